package criruntime_test

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A daemon that dies in RunPodSandbox or CreateContainer before writing the
// record leaves a pause process, a monitor and container, a snapshot mount,
// a netns with a CNI lease and directories: the next Service removes them.
func TestRecoveryCollectsOrphans(t *testing.T) {
	e := newEnv(t)
	sbc := e.sandboxConfig("orphan", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	e.runContainer(sb, sbc, containerConfig("c", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	e.svc = nil

	// Forget the records, as if the daemon had died before writing them.
	db, err := bolt.Open(filepath.Join(e.dirs.Root, "runtime.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"sandboxes", "containers"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	e.start()
	e.checkClean()
}
