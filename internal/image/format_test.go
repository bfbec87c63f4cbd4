package image

import (
	"bytes"
	"strings"
	"testing"
)

func TestHumanSizeAndProgress(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 4_260_000: "4.26MB", 1_500_000_000: "1.5GB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %s, want %s", n, got, want)
		}
	}
	var buf bytes.Buffer
	p := NewProgressPrinter(&buf)
	p(Progress{Digest: "a", Done: 500, Total: 1000})
	p(Progress{Digest: "a", Done: 501, Total: 1000})
	p(Progress{Digest: "b", Done: 1000, Total: 1000})
	p(Progress{Digest: "a", Done: 1000, Total: 1000})
	lines := strings.Split(buf.String(), "\r")[1:]
	want := []string{"pulling 1 layer(s): 500B / 1kB (50%)", "pulling 2 layer(s): 1.5kB / 2kB (75%)", "pulling 2 layer(s): 2kB / 2kB (100%)"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("progress output %q, want %q", lines, want)
	}
}
