package crilog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

const sample = `2026-11-23T18:00:01.000000000Z stdout F out one
2026-11-23T18:00:02.000000000Z stderr F err one
2026-11-23T18:00:03.000000000Z stdout P par
2026-11-23T18:00:04.000000000Z stdout P tial
2026-11-23T18:00:05.000000000Z stdout F  line
not a record
2026-11-23T18:00:06Z stdout F short time
2026-11-23T18:00:07.000000000+02:00 stderr F err two
`

func writeLog(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func read(t *testing.T, path string, o ReadOptions) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := ReadLogs(context.Background(), path, o, &stdout, &stderr); err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	return stdout.String(), stderr.String()
}

func TestReadAll(t *testing.T) {
	path := writeLog(t, sample)
	stdout, stderr := read(t, path, ReadOptions{Tail: -1})
	if want := "out one\npartial line\nshort time\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if want := "err one\nerr two\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

func TestReadTimestamps(t *testing.T) {
	path := writeLog(t, sample)
	stdout, stderr := read(t, path, ReadOptions{Tail: -1, Timestamps: true})
	want := "2026-11-23T18:00:01.000000000Z out one\n" +
		"2026-11-23T18:00:03.000000000Z partial line\n" +
		"2026-11-23T18:00:06.000000000Z short time\n"
	if stdout != want {
		t.Errorf("stdout\n%q\nwant\n%q", stdout, want)
	}
	if want := "2026-11-23T18:00:02.000000000Z err one\n2026-11-23T18:00:07.000000000+02:00 err two\n"; stderr != want {
		t.Errorf("stderr\n%q\nwant\n%q", stderr, want)
	}
}

func TestReadTail(t *testing.T) {
	path := writeLog(t, sample)
	for _, tc := range []struct {
		tail           int64
		stdout, stderr string
	}{
		{0, "", ""},
		{1, "", "err two\n"},
		{2, "short time\n", "err two\n"},
		// Partial records count as lines, so the tail may start mid-line.
		{4, " line\nshort time\n", "err two\n"},
		{5, "tial line\nshort time\n", "err two\n"},
		{100, "out one\npartial line\nshort time\n", "err one\nerr two\n"},
	} {
		stdout, stderr := read(t, path, ReadOptions{Tail: tc.tail})
		if stdout != tc.stdout || stderr != tc.stderr {
			t.Errorf("tail %d: stdout %q stderr %q, want %q %q", tc.tail, stdout, stderr, tc.stdout, tc.stderr)
		}
	}
}

func TestReadTailIgnoresIncompleteLine(t *testing.T) {
	path := writeLog(t, sample+"2026-11-23T18:00:08.000000000Z stdout F unfinish")
	stdout, _ := read(t, path, ReadOptions{Tail: 2})
	if want := "short time\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	// Without a tail the incomplete line is shown as it is.
	stdout, _ = read(t, path, ReadOptions{Tail: -1})
	if !strings.HasSuffix(stdout, "short time\nunfinish") {
		t.Errorf("stdout %q does not end with the incomplete line", stdout)
	}
}

func TestReadTailLargeFile(t *testing.T) {
	var b strings.Builder
	for range 10000 {
		b.WriteString("2026-11-23T18:00:01.000000000Z stdout F 0123456789\n")
	}
	b.WriteString("2026-11-23T18:00:01.000000000Z stdout F last\n")
	path := writeLog(t, b.String())
	stdout, _ := read(t, path, ReadOptions{Tail: 3})
	if want := "0123456789\n0123456789\nlast\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
}

func TestReadSince(t *testing.T) {
	path := writeLog(t, sample)
	since, err := parseTime("2026-11-23T18:00:02Z")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := read(t, path, ReadOptions{Tail: -1, Since: since})
	if want := "partial line\nshort time\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	// 18:00:07+02:00 is 16:00:07Z, before since.
	if want := "err one\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

func TestReadLimitBytes(t *testing.T) {
	path := writeLog(t, sample)
	stdout, stderr := read(t, path, ReadOptions{Tail: -1, LimitBytes: 11})
	if stdout != "out one\n" || stderr != "err" {
		t.Errorf("stdout %q stderr %q, want 11 bytes in all", stdout, stderr)
	}
	stdout, _ = read(t, path, ReadOptions{Tail: -1, LimitBytes: 5, Timestamps: true})
	if stdout != "2026-" {
		t.Errorf("stdout %q: the limit counts timestamps", stdout)
	}
}

func TestReadOneStream(t *testing.T) {
	path := writeLog(t, sample)
	var stdout bytes.Buffer
	if err := ReadLogs(context.Background(), path, ReadOptions{Tail: -1, LimitBytes: 20}, &stdout, nil); err != nil {
		t.Fatal(err)
	}
	// stderr is neither written nor counted against the limit.
	if want := "out one\npartial line"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
}

func TestReadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.log")
	err := ReadLogs(context.Background(), missing, ReadOptions{Tail: -1}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestReadSymlink(t *testing.T) {
	path := writeLog(t, sample)
	link := filepath.Join(t.TempDir(), "link.log")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	stdout, _ := read(t, link, ReadOptions{Tail: 1, Follow: false})
	if stdout != "" {
		t.Errorf("stdout %q", stdout)
	}
	stdout, _ = read(t, link, ReadOptions{Tail: -1})
	if !strings.HasPrefix(stdout, "out one\n") {
		t.Errorf("stdout %q", stdout)
	}
}

// lines is a concurrency-safe writer that signals each write.
type lines struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newLines() *lines { return &lines{wrote: make(chan struct{}, 100)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until l holds want; done is ReadLogs's result, which
// must not come first.
func (l *lines) waitFor(t *testing.T, want string, done <-chan error) {
	t.Helper()
	for l.String() != want {
		select {
		case <-l.wrote:
		case err := <-done:
			t.Fatalf("ReadLogs returned %v with output %q, want %q", err, l.String(), want)
		case <-t.Context().Done():
			t.Fatalf("output %q, want %q", l.String(), want)
		}
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestFollow(t *testing.T) {
	path := writeLog(t, "2026-11-23T18:00:01.000000000Z stdout F one\n2026-11-23T18:00:01.000000000Z stdout F two\n")
	var running atomic.Bool
	running.Store(true)
	stdout, stderr := newLines(), newLines()
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(t.Context(), path, ReadOptions{Follow: true, Tail: 1, Running: running.Load}, stdout, stderr)
	}()
	stdout.waitFor(t, "two\n", done)

	// An incomplete record is shown once the writer completes it.
	appendFile(t, path, "2026-11-23T18:00:02.000000000Z stderr F thr")
	appendFile(t, path, "ee\n2026-11-23T18:00:02.000000000Z stdout P fo")
	stderr.waitFor(t, "three\n", done)
	appendFile(t, path, "\n2026-11-23T18:00:02.000000000Z stdout F ur\n")
	stdout.waitFor(t, "two\nfour\n", done)

	// What is written before the container is seen to stop is still read.
	appendFile(t, path, "2026-11-23T18:00:03.000000000Z stdout F five\n")
	running.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	if got := stdout.String(); got != "two\nfour\nfive\n" {
		t.Fatalf("stdout %q", got)
	}
}

func TestFollowReopenedFile(t *testing.T) {
	path := writeLog(t, "2026-11-23T18:00:01.000000000Z stdout F one\n")
	var running atomic.Bool
	running.Store(true)
	stdout := newLines()
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(t.Context(), path, ReadOptions{Follow: true, Tail: -1, Running: running.Load}, stdout, nil)
	}()
	stdout.waitFor(t, "one\n", done)

	// Rotation: the file is renamed, the writer adds to it until it reopens
	// the path, then writes to the new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".1", "2026-11-23T18:00:02.000000000Z stdout F two\n")
	appendFile(t, path, "2026-11-23T18:00:03.000000000Z stdout F three\n")
	stdout.waitFor(t, "one\ntwo\nthree\n", done)
	appendFile(t, path, "2026-11-23T18:00:04.000000000Z stdout F four\n")
	stdout.waitFor(t, "one\ntwo\nthree\nfour\n", done)
	running.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
}

func TestFollowCancel(t *testing.T) {
	path := writeLog(t, "2026-11-23T18:00:01.000000000Z stdout F one\n")
	ctx, cancel := context.WithCancel(context.Background())
	stdout := newLines()
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(ctx, path, ReadOptions{Follow: true, Tail: -1, Running: func() bool { return true }}, stdout, nil)
	}()
	stdout.waitFor(t, "one\n", done)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadLogs after cancel: %v", err)
	}
}

func TestFollowStoppedContainer(t *testing.T) {
	// With the container gone, follow reads to the end and returns; an
	// incomplete last line is never completed, so it is not shown.
	path := writeLog(t, sample+"2026-11-23T18:00:08.000000000Z stdout F unfinish")
	stdout, _ := read(t, path, ReadOptions{Follow: true, Tail: -1})
	if want := "out one\npartial line\nshort time\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeClock()
	out := NewWriter(f, Stdout, clock)
	errw := NewWriter(f, Stderr, clock)
	long := strings.Repeat("z", MaxLineSize*2+3)
	mustWrite(t, out, "hello\n"+long+"\n")
	mustWrite(t, errw, "warn\nno newline")
	if err := errw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	stdout, stderr := read(t, path, ReadOptions{Tail: -1})
	if stdout != "hello\n"+long+"\n" {
		t.Errorf("stdout of %d bytes, want %d", len(stdout), len("hello\n"+long+"\n"))
	}
	if stderr != "warn\nno newline" {
		t.Errorf("stderr %q", stderr)
	}
}

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }

func fakeClock() *clocktesting.FakePassiveClock { return clocktesting.NewFakePassiveClock(t0) }

// gate closes entered at the first write and holds it until open is closed.
type gate struct {
	*lines
	entered, open chan struct{}
	once          sync.Once
}

func (g *gate) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.open
	})
	return g.lines.Write(p)
}

// TestFollowReplacedBeforeWatch replaces the file while the reader is busy
// writing its first line, before it watches the directory.
func TestFollowReplacedBeforeWatch(t *testing.T) {
	path := writeLog(t, "2026-11-23T18:00:01.000000000Z stdout F one\n")
	var running atomic.Bool
	running.Store(true)
	out := &gate{lines: newLines(), entered: make(chan struct{}), open: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(t.Context(), path, ReadOptions{Follow: true, Tail: -1, Running: running.Load}, out, nil)
	}()
	<-out.entered
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path+".1", "2026-11-23T18:00:02.000000000Z stdout F two\n")
	appendFile(t, path, "2026-11-23T18:00:03.000000000Z stdout F three\n")
	close(out.open)
	out.waitFor(t, "one\ntwo\nthree\n", done)
	running.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
}

func TestReadCancelled(t *testing.T) {
	path := writeLog(t, sample)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout bytes.Buffer
	if err := ReadLogs(ctx, path, ReadOptions{Tail: -1}, &stdout, nil); !errors.Is(err, context.Canceled) || stdout.Len() != 0 {
		t.Fatalf("ReadLogs with a cancelled context: %v, output %q", err, stdout.String())
	}
}
