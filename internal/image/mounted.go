package image

import (
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// mountedLayers returns the directories overlay mounts use as lower layers.
// A layer a mounted rootfs still stacks is not deleted even when no image
// record names it any more (a container outlives `image rm`); a later
// Remove or Prune deletes it once unmounted.
func mountedLayers() (map[string]bool, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("overlay"))
	if err != nil {
		return nil, fmt.Errorf("list overlay mounts: %w", err)
	}
	used := map[string]bool{}
	for _, m := range mounts {
		for _, opt := range strings.Split(m.VFSOptions, ",") {
			// mount(2) shows "lowerdir=a:b"; the new mount API "lowerdir+=a" per layer.
			if lowers, ok := strings.CutPrefix(opt, "lowerdir="); ok {
				for _, l := range strings.Split(lowers, ":") {
					used[l] = true
				}
			} else if l, ok := strings.CutPrefix(opt, "lowerdir+="); ok {
				used[l] = true
			}
		}
	}
	return used, nil
}
