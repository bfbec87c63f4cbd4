package image

import (
	"os"
	"runtime"
	"strings"
)

// cpuVariant is the OCI platform variant of this machine ("v7" on 32-bit
// ARMv7, "v8" on arm64), empty where variants are not used.
func cpuVariant() string {
	switch runtime.GOARCH {
	case "arm64":
		return "v8"
	case "arm":
		data, err := os.ReadFile("/proc/cpuinfo")
		if err != nil {
			return ""
		}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "CPU architecture" {
				return "v" + strings.TrimSpace(v)
			}
		}
	}
	return ""
}
