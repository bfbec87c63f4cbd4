package image

import (
	"fmt"
	"io"
	"sync"
)

// NewProgressPrinter returns a PullOptions.Progress callback that keeps one
// status line on a terminal w ("\r"-rewritten): layers seen, bytes received
// of bytes declared. It writes only when the whole percentage changes. The
// caller ends the line after the pull.
func NewProgressPrinter(w io.Writer) func(Progress) {
	var mu sync.Mutex
	done, total := map[string]int64{}, map[string]int64{}
	last := -1
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		done[p.Digest], total[p.Digest] = p.Done, p.Total
		var d, t int64
		for k, v := range done {
			d += v
			t += max(total[k], v)
		}
		pct := 0
		if t > 0 {
			pct = int(d * 100 / t)
		}
		if pct == last {
			return
		}
		last = pct
		fmt.Fprintf(w, "\rpulling %d layer(s): %s / %s (%d%%)", len(done), HumanSize(d), HumanSize(t), pct)
	}
}
