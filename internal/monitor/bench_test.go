package monitor

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkMonitorMemory reports the memory of monitors that each hold a
// running container which has logged a little: resident, proportional
// (shared pages split between the monitors) and private, in KiB per monitor.
func BenchmarkMonitorMemory(b *testing.B) {
	const n = 20
	var handles []*Handle
	var envs []*env
	for range n {
		e := newEnv(b, "sh", "-c", "echo hello; echo oops >&2; exec sleep 1000")
		h := e.start(b)
		handles = append(handles, h)
		envs = append(envs, e)
	}
	b.Cleanup(func() {
		for _, e := range envs {
			_ = e.runc.Kill(context.Background(), e.p.ID, syscall.SIGKILL, false)
		}
	})
	// Measure once each monitor has copied its container's output.
	for _, e := range envs {
		for {
			data, _ := os.ReadFile(e.p.LogPath)
			if bytes.Contains(data, []byte("oops")) && bytes.Contains(data, []byte("hello")) {
				break
			}
			select {
			case <-b.Context().Done():
				b.Fatal("no log output")
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	var rss, pss, private float64
	for b.Loop() {
		rss, pss, private = 0, 0, 0
		for _, h := range handles {
			m, err := smapsRollup(h.PID)
			if err != nil {
				b.Fatal(err)
			}
			rss += float64(m["Rss"])
			pss += float64(m["Pss"])
			private += float64(m["Private_Clean"] + m["Private_Dirty"])
		}
	}
	b.ReportMetric(rss/n, "rss-KiB/monitor")
	b.ReportMetric(pss/n, "pss-KiB/monitor")
	b.ReportMetric(private/n, "private-KiB/monitor")
}

// smapsRollup returns the kB fields of /proc/PID/smaps_rollup.
func smapsRollup(pid int) (map[string]int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[2] == "kB" {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return nil, err
			}
			m[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	return m, sc.Err()
}

// BenchmarkStart measures Start: the monitor's start and runc create.
func BenchmarkStart(b *testing.B) {
	e := newEnv(b, "sleep", "1000")
	for b.Loop() {
		h, err := Start(context.Background(), e.cfg, e.p)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := e.runc.Delete(context.Background(), e.p.ID, true); err != nil {
			b.Fatal(err)
		}
		waitReaped(h.PID)
		os.Remove(e.p.ExitFile)
		b.StartTimer()
	}
}
