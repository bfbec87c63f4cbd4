package criruntime

import (
	_ "embed"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/seccomp"
)

// defaultSeccompProfile is the RuntimeDefault profile: containers/common's
// default seccomp.json (Apache-2.0, the Docker/moby default profile's
// lineage, as shipped by Debian's golang-github-containers-common), in the
// Docker profile format with per-architecture and per-capability rules.
//
//go:embed seccomp_default.json
var defaultSeccompProfile []byte

// seccompProfile is the Docker/containers seccomp profile format; an OCI
// LinuxSeccomp in JSON is a subset of it, so Localhost profiles of either
// form load.
type seccompProfile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures   []specs.Arch             `json:"architectures,omitempty"`
	ArchMap         []struct {
		Arch    specs.Arch   `json:"architecture"`
		SubArch []specs.Arch `json:"subArchitectures"`
	} `json:"archMap,omitempty"`
	Flags    []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	Syscalls []struct {
		Name     string                   `json:"name,omitempty"`
		Names    []string                 `json:"names,omitempty"`
		Action   specs.LinuxSeccompAction `json:"action"`
		ErrnoRet *uint                    `json:"errnoRet,omitempty"`
		Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
		Includes seccompFilter            `json:"includes"`
		Excludes seccompFilter            `json:"excludes"`
	} `json:"syscalls"`
}

type seccompFilter struct {
	Arches    []string `json:"arches,omitempty"`
	Caps      []string `json:"caps,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// seccompFor returns the seccomp filter for a security profile (nil for
// Unconfined or no profile, as the kubelet's default is Unconfined), given
// the process's capabilities (rules of the default profile depend on them).
// The deprecated seccomp_profile_path form ("runtime/default",
// "unconfined", "localhost/<path>") is honoured when no profile is set.
func seccompFor(p *runtimeapi.SecurityProfile, legacyPath string, caps []string) (*specs.LinuxSeccomp, error) {
	if p == nil {
		switch {
		case legacyPath == "" || legacyPath == "unconfined":
			return nil, nil
		case legacyPath == "runtime/default" || legacyPath == "docker/default":
			p = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		case strings.HasPrefix(legacyPath, "localhost/"):
			p = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(legacyPath, "localhost/")}
		default:
			return nil, invalidf("seccomp profile path %q is not runtime/default, unconfined or localhost/<path>", legacyPath)
		}
	}
	switch p.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined:
		return nil, nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return loadSeccomp(defaultSeccompProfile, caps)
	case runtimeapi.SecurityProfile_Localhost:
		ref := p.GetLocalhostRef()
		if !filepath.IsAbs(ref) {
			return nil, invalidf("localhost seccomp profile %q must be an absolute path", ref)
		}
		data, err := os.ReadFile(ref)
		if err != nil {
			return nil, invalidf("read localhost seccomp profile: %v", err)
		}
		return loadSeccomp(data, caps)
	default:
		return nil, invalidf("unknown seccomp profile type %v", p.GetProfileType())
	}
}

// loadSeccomp converts a profile to the OCI form for this machine's
// architecture, the process's capabilities and the running kernel, as
// moby's and containerd's LoadProfile do.
func loadSeccomp(data []byte, caps []string) (*specs.LinuxSeccomp, error) {
	var p seccompProfile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, invalidf("decode seccomp profile: %v", err)
	}
	out := &specs.LinuxSeccomp{DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet, Flags: p.Flags}
	native, ok := seccomp.NativeArch()
	if len(p.ArchMap) > 0 && ok {
		for _, a := range p.ArchMap {
			if a.Arch == native {
				out.Architectures = append([]specs.Arch{a.Arch}, a.SubArch...)
			}
		}
	} else {
		out.Architectures = p.Architectures
	}
	kernel := kernelVersion()
	for _, sc := range p.Syscalls {
		if !sc.Includes.matches(caps, kernel) || sc.Excludes.matchesAny(caps, kernel) {
			continue
		}
		names := sc.Names
		if sc.Name != "" {
			names = append([]string{sc.Name}, names...)
		}
		if len(names) == 0 {
			continue
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: names, Action: sc.Action, ErrnoRet: sc.ErrnoRet, Args: sc.Args})
	}
	return out, nil
}

// matches reports whether every condition of an includes filter holds.
func (f seccompFilter) matches(caps []string, kernel [2]int) bool {
	if len(f.Arches) > 0 && !slices.Contains(f.Arches, runtime.GOARCH) {
		return false
	}
	for _, c := range f.Caps {
		if !slices.Contains(caps, c) {
			return false
		}
	}
	if f.MinKernel != "" && !kernelAtLeast(kernel, f.MinKernel) {
		return false
	}
	return true
}

// matchesAny reports whether any condition of an excludes filter holds.
func (f seccompFilter) matchesAny(caps []string, kernel [2]int) bool {
	if slices.Contains(f.Arches, runtime.GOARCH) {
		return true
	}
	for _, c := range f.Caps {
		if slices.Contains(caps, c) {
			return true
		}
	}
	return f.MinKernel != "" && kernelAtLeast(kernel, f.MinKernel)
}

func kernelVersion() [2]int {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return [2]int{}
	}
	return parseKernel(unix.ByteSliceToString(u.Release[:]))
}

func parseKernel(s string) [2]int {
	var v [2]int
	parts := strings.SplitN(s, ".", 3)
	for i := 0; i < 2 && i < len(parts); i++ {
		n := strings.TrimFunc(parts[i], func(r rune) bool { return r < '0' || r > '9' })
		v[i], _ = strconv.Atoi(n)
	}
	return v
}

func kernelAtLeast(have [2]int, min string) bool {
	want := parseKernel(min)
	return have[0] > want[0] || (have[0] == want[0] && have[1] >= want[1])
}
