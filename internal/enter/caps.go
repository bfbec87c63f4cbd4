package enter

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/peapod-dev/peapod/internal/oci"
)

// lastCap is the highest capability this kernel knows (read once).
var lastCap = sync.OnceValues(func() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read last capability: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse /proc/sys/kernel/cap_last_cap %q: %w", b, err)
	}
	return n, nil
})

// capNumbers converts capability names; like runc, names this kernel (or
// this table) does not know are left out rather than failing the process.
func capNumbers(names []string, last int) []uint32 {
	var out []uint32
	for _, n := range names {
		for i, known := range oci.CapabilityNames {
			if i <= last && known == n {
				out = append(out, uint32(i))
				break
			}
		}
	}
	return out
}
