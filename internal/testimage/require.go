package testimage

import (
	"os"
	"os/exec"
	"testing"
)

// inCI reports whether missing prerequisites must fail tests instead of
// skipping them, so that CI never passes by silently testing nothing.
func inCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot skips the test when it does not run as root, or fails it when CI=true.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if inCI() {
		t.Fatalf("test needs root (euid is %d); run it as root", os.Geteuid())
	}
	t.Skipf("test needs root (euid is %d)", os.Geteuid())
}

// RequireBinary returns the path of the program name, found on PATH (or as given
// when name is a path). It skips the test when the program is missing, or fails
// it when CI=true, naming the Debian package that provides it.
func RequireBinary(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if inCI() {
		t.Fatalf("test needs %s: %v; install it with: apt-get install %s", name, err, debianPackage)
	}
	t.Skipf("test needs %s (apt-get install %s): %v", name, debianPackage, err)
	return ""
}
