package apiserver

import (
	"strings"
	"testing"
)

func TestKubectlServerDryRun(t *testing.T) {
	ts := startServer(t)
	if out := ts.mustKubectl(t, twoContainerPod, "create", "--dry-run=server", "-f", "-"); out != "pod/web created (server dry run)\n" {
		t.Fatalf("dry-run create: %q", out)
	}
	if out, _, _ := ts.kubectl(t, "", "get", "pods", "-o", "name"); out != "" {
		t.Fatalf("dry run created %q", out)
	}
	// Validation still runs.
	_, errOut, err := ts.kubectl(t, strings.Replace(twoContainerPod, "image: busybox:1.36", "image: \"\"", 1), "create", "--dry-run=server", "-f", "-")
	if err == nil || !strings.Contains(errOut, "spec.containers[1].image: Required value") {
		t.Fatalf("invalid dry run: %v %s", err, errOut)
	}
	ts.mustKubectl(t, twoContainerPod, "create", "-f", "-")
	if out := ts.mustKubectl(t, "", "delete", "pod", "web", "--dry-run=server"); out != "pod \"web\" deleted (server dry run)\n" {
		t.Fatalf("dry-run delete: %q", out)
	}
	if out := ts.mustKubectl(t, "", "get", "pod", "web", "-o", "jsonpath={.metadata.deletionTimestamp}"); out != "" {
		t.Fatalf("dry-run delete marked the pod: %q", out)
	}
}
