package e2e

import (
	"strings"
	"testing"
)

// `peapod kubectl` is kubectl against the local daemon, for machines without one.
func TestEmbeddedKubectl(t *testing.T) {
	d := startDaemon(t)
	out, err := d.peapod("kubeconfig")
	if err != nil || strings.TrimSpace(out) != d.kubeconfig {
		t.Errorf("peapod kubeconfig = %q, %v; want %s", out, err, d.kubeconfig)
	}
	out, err = d.peapod("kubectl", "get", "namespaces")
	if err != nil || !strings.Contains(out, "default") || !strings.Contains(out, "Active") {
		t.Errorf("peapod kubectl get namespaces: %v\n%s", err, out)
	}
	out, err = d.peapod("kubectl", "get", "pod", "missing")
	if err == nil || !strings.Contains(out, `pods "missing" not found`) {
		t.Errorf("peapod kubectl get pod missing: err=%v\n%s", err, out)
	}
}
