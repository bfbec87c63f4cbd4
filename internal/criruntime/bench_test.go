package criruntime_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkPodLifecycle times RunPodSandbox, CreateContainer and
// StartContainer of a busybox sleep, then StopPodSandbox and
// RemovePodSandbox, and reports the medians (issue 4's benchmark).
func BenchmarkPodLifecycle(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	var run, create, start, stop, remove []time.Duration
	for i := 0; i < b.N; i++ {
		sbc := e.sandboxConfig("bench", runtimeapi.NamespaceMode_POD)
		t0 := time.Now()
		sb, err := e.svc.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		c, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: containerConfig("c", runtimeapi.NamespaceMode_POD, "sleep", "1000"), SandboxConfig: sbc})
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := e.svc.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := e.svc.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		if _, err := e.svc.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		t5 := time.Now()
		run, create, start, stop, remove = append(run, t1.Sub(t0)), append(create, t2.Sub(t1)), append(start, t3.Sub(t2)), append(stop, t4.Sub(t3)), append(remove, t5.Sub(t4))
	}
	median := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(run), "ms/RunPodSandbox")
	b.ReportMetric(median(create), "ms/CreateContainer")
	b.ReportMetric(median(start), "ms/StartContainer")
	b.ReportMetric(median(stop), "ms/StopPodSandbox")
	b.ReportMetric(median(remove), "ms/RemovePodSandbox")
}

// BenchmarkExecSync reports the CPU (this process, the processes it reaps,
// and the peapod-enter server with the processes it reaps) and wall time of
// one ExecSync of `true`, through peapod-enter and through runc exec, in a container without and with the RuntimeDefault
// seccomp profile (issue 5's lean exec path).
func BenchmarkExecSync(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	sbc := e.sandboxConfig("execbench", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	plain := e.runContainer(sb, sbc, containerConfig("plain", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
	cc := containerConfig("seccomp", runtimeapi.NamespaceMode_POD, "sleep", "1000")
	cc.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	confined := e.runContainer(sb, sbc, cc)
	cmd := []string{"true"}
	for _, c := range []struct{ name, id string }{{"plain", plain}, {"seccomp", confined}} {
		b.Run(c.name+"/lean", func(b *testing.B) {
			measureExec(b, func() error {
				_, stderr, code, err := e.svc.ExecLean(ctx, c.id, cmd)
				if err == nil && code != 0 {
					err = fmt.Errorf("exit %d: %s", code, stderr)
				}
				return err
			})
		})
		b.Run(c.name+"/runc", func(b *testing.B) {
			measureExec(b, func() error {
				code, err := e.svc.ExecRunc(ctx, c.id, cmd, io.Discard, io.Discard)
				if err == nil && code != 0 {
					err = fmt.Errorf("exit %d", code)
				}
				return err
			})
		})
	}
}

func measureExec(b *testing.B, run func() error) {
	cpu := func(who int) time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(who, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s0, c0, e0 := cpu(syscall.RUSAGE_SELF), cpu(syscall.RUSAGE_CHILDREN), enterCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	self, children, enter := per(cpu(syscall.RUSAGE_SELF)-s0), per(cpu(syscall.RUSAGE_CHILDREN)-c0), per(enterCPU()-e0)
	b.ReportMetric(self+children+enter, "ms-CPU/op")
	b.ReportMetric(self, "ms-CPU-runtime/op")
	b.ReportMetric(children, "ms-CPU-children/op")
	b.ReportMetric(enter, "ms-CPU-peapod-enter/op")
}

// enterCPU is the CPU time of this process's peapod-enter server and of the
// children it reaped.
func enterCPU() time.Duration {
	kids, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	var sum time.Duration
	for _, k := range kids {
		b, _ := os.ReadFile(k)
		for _, pid := range strings.Fields(string(b)) {
			stat, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil || !bytes.Contains(stat, []byte("(peapod-enter) ")) {
				continue
			}
			// utime, stime, cutime and cstime, in clock ticks (100 Hz).
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
			for _, v := range f[11:15] {
				n, _ := strconv.ParseInt(v, 10, 64)
				sum += time.Duration(n) * 10 * time.Millisecond
			}
		}
	}
	return sum
}
