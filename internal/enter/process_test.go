package enter

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// What the lean path cannot reproduce exactly goes to runc exec.
func TestNewProcessRefusesWhatRuncMustDo(t *testing.T) {
	base := func() *specs.Spec {
		return &specs.Spec{
			Process: &specs.Process{Args: []string{"sh"}, Cwd: "/", Capabilities: &specs.LinuxCapabilities{}},
			Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			}},
		}
	}
	if _, err := NewProcess("c", base()); err != nil {
		t.Fatalf("a plain container: %v", err)
	}
	for name, change := range map[string]func(*specs.Spec){
		"terminal":        func(s *specs.Spec) { s.Process.Terminal = true },
		"AppArmor":        func(s *specs.Spec) { s.Process.ApparmorProfile = "p" },
		"SELinux":         func(s *specs.Spec) { s.Process.SelinuxLabel = "l" },
		"no capabilities": func(s *specs.Spec) { s.Process.Capabilities = nil },
		"scheduler":       func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{} },
		"personality":     func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{} },
		"user namespace": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		},
		"time namespace": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		},
		"no mount namespace": func(s *specs.Spec) { s.Linux.Namespaces = s.Linux.Namespaces[:1] },
	} {
		s := base()
		change(s)
		if _, err := NewProcess("c", s); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}
