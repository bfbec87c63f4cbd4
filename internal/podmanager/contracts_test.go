package podmanager

import (
	"github.com/peapod-dev/peapod/internal/cgroups"
	"github.com/peapod-dev/peapod/internal/registry"
)

// The real registry and cgroup manager satisfy what the pod manager needs.
var (
	_ PodStore               = (*registry.Pods)(nil)
	_ containerEventRecorder = (*registry.Pods)(nil)
	_ CgroupManager          = (*cgroups.Manager)(nil)
)
