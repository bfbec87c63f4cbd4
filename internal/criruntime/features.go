package criruntime

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"time"
)

// runcFeatures is the part of `runc features` the runtime advertises from.
type runcFeatures struct {
	MountOptions []string `json:"mountOptions"`
}

// probeRecursiveReadOnly reports whether runc supports recursive read-only
// mounts ("rro", applied with mount_setattr on Linux 5.12 and later).
// internal/oci has no Features call, so runc is asked directly.
func probeRecursiveReadOnly(ctx context.Context, runc string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, runc, "features").Output()
	if err != nil {
		return false
	}
	var f runcFeatures
	if json.Unmarshal(out, &f) != nil {
		return false
	}
	return slices.Contains(f.MountOptions, "rro")
}
