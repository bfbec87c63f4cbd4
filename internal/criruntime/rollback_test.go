package criruntime_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func sleepBriefly() { time.Sleep(20 * time.Millisecond) }

// A CNI plugin that fails leaves nothing behind: no netns, lease, veth,
// directory or name reservation.
func TestRollbackOnCNIFailure(t *testing.T) {
	plugins := t.TempDir()
	for _, p := range []string{"host-local", "loopback", "portmap"} {
		if err := os.Symlink(filepath.Join(cniPluginDirs[0], p), filepath.Join(plugins, p)); err != nil {
			t.Fatal(err)
		}
	}
	// The bridge wrapper runs the real plugin (so that an address is
	// allocated and a veth made) and then fails ADD.
	wrapper := "#!/bin/sh\nout=$(" + filepath.Join(cniPluginDirs[0], "bridge") + ")\nrc=$?\n" +
		"if [ \"$CNI_COMMAND\" = ADD ] && [ $rc -eq 0 ]; then echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"injected bridge failure\"}'; exit 1; fi\n" +
		"echo \"$out\"; exit $rc\n"
	if err := os.WriteFile(filepath.Join(plugins, "bridge"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withPluginDirs(plugins))
	ctx := context.Background()
	sbc := e.sandboxConfig("cnifail", runtimeapi.NamespaceMode_POD)
	if _, err := e.svc.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc}); err == nil {
		t.Fatal("RunPodSandbox succeeded with a failing bridge plugin")
	} else {
		t.Logf("RunPodSandbox: %v", err)
	}
	e.checkClean()
	list, _ := e.svc.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if len(list.GetItems()) != 0 {
		t.Errorf("sandboxes after a failed RunPodSandbox: %v", list.Items)
	}
}

// A runc that fails to create leaves nothing behind, for a sandbox (runc
// run) and for a container (whose monitor runs runc create).
func TestRollbackOnRuncFailure(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "fail-create")
	wrapper := filepath.Join(dir, "runc")
	real := "/usr/sbin/runc"
	if p, err := lookRunc(); err == nil {
		real = p
	}
	script := "#!/bin/sh\nif [ -e " + marker + " ]; then for a in \"$@\"; do if [ \"$a\" = create ] || [ \"$a\" = run ]; then echo 'injected runc create failure' >&2; exit 1; fi; done; fi\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withRunc(wrapper))
	ctx := context.Background()

	sbc := e.sandboxConfig("runcfail", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := containerConfig("c", runtimeapi.NamespaceMode_POD, "sleep", "1000")
	if _, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: c, SandboxConfig: sbc}); err == nil {
		t.Fatal("CreateContainer succeeded with a failing runc")
	} else {
		t.Logf("CreateContainer: %v", err)
	}
	e.checkCleanContainers(sb, 0)
	// The name is free again.
	os.Remove(marker)
	e.createContainer(sb, sbc, c)
	if _, err := e.svc.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sbc2 := e.sandboxConfig("runcfail2", runtimeapi.NamespaceMode_POD)
	if _, err := e.svc.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc2}); err == nil {
		t.Fatal("RunPodSandbox succeeded with a failing runc")
	} else {
		t.Logf("RunPodSandbox: %v", err)
	}
	e.checkClean()
	os.Remove(marker)
	e.runSandbox(sbc2) // the name is free again
}
