package crilog

import (
	"errors"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// writes records each Write call separately.
type writes struct{ calls []string }

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

var t0 = time.Date(2026, 11, 23, 18, 0, 0, 5, time.UTC)

func TestWriterLines(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(t0)
	var out writes
	w := NewWriter(&out, Stdout, clock)

	mustWrite(t, w, "one\ntwo\n\n")
	mustWrite(t, w, "thr")
	clock.SetTime(t0.Add(time.Second))
	mustWrite(t, w, "ee\nfo")
	clock.SetTime(t0.Add(2 * time.Second))
	mustWrite(t, w, "ur")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2026-11-23T18:00:00.000000005Z stdout F one\n",
		"2026-11-23T18:00:00.000000005Z stdout F two\n",
		"2026-11-23T18:00:00.000000005Z stdout F \n",
		"2026-11-23T18:00:01.000000005Z stdout F three\n",
		"2026-11-23T18:00:02.000000005Z stdout P four\n",
	}
	if strings.Join(out.calls, "|") != strings.Join(want, "|") {
		t.Fatalf("records\n%q\nwant\n%q", out.calls, want)
	}
}

func TestWriterTimestampInUTC(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)))
	var out writes
	w := NewWriter(&out, Stderr, clock)
	mustWrite(t, w, "x\n")
	if want := "2026-01-02T02:04:05.000000000Z stderr F x\n"; out.calls[0] != want {
		t.Fatalf("record %q, want %q", out.calls[0], want)
	}
}

func TestWriterLongLines(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(t0)
	var out writes
	w := NewWriter(&out, Stdout, clock)

	long := strings.Repeat("a", MaxLineSize) + strings.Repeat("b", MaxLineSize) + "cc"
	mustWrite(t, w, long+"\n")
	checkContents(t, out.calls, []string{
		"P " + strings.Repeat("a", MaxLineSize),
		"P " + strings.Repeat("b", MaxLineSize),
		"F cc",
	})

	// A line without a newline is written in parts as it grows.
	out.calls = nil
	for range MaxLineSize / 1000 {
		mustWrite(t, w, strings.Repeat("x", 1000))
	}
	if len(out.calls) != 0 {
		t.Fatalf("%d records before the line reached %d bytes", len(out.calls), MaxLineSize)
	}
	mustWrite(t, w, strings.Repeat("y", 1000))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := MaxLineSize / 1000 * 1000
	checkContents(t, out.calls, []string{
		"P " + strings.Repeat("x", n) + strings.Repeat("y", MaxLineSize-n),
		"P " + strings.Repeat("y", 1000-(MaxLineSize-n)),
	})

	out.calls = nil
	if err := w.Close(); err != nil || len(out.calls) != 0 {
		t.Fatalf("second Close: %v, %q", err, out.calls)
	}
}

// checkContents compares records without their timestamp and stream.
func checkContents(t *testing.T, calls, want []string) {
	t.Helper()
	var got []string
	for _, c := range calls {
		_, rest, _ := strings.Cut(c, " stdout ")
		got = append(got, strings.TrimSuffix(rest, "\n"))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %d records %.80q…, want %d", len(got), got, len(want))
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterError(t *testing.T) {
	w := NewWriter(failing{}, Stdout, clocktesting.NewFakePassiveClock(t0))
	if _, err := w.Write([]byte("x\n")); err == nil || err.Error() != "disk full" {
		t.Fatalf("Write: %v, want the underlying error", err)
	}
}

func mustWrite(t *testing.T, w interface{ Write([]byte) (int, error) }, s string) {
	t.Helper()
	n, err := w.Write([]byte(s))
	if err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}
