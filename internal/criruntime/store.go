package criruntime

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The metadata database (DIR/runtime.db) holds one JSON record per sandbox and
// per container: everything needed to answer Status and List calls and to
// recover after a daemon restart. The CRI configs are kept as protobuf bytes
// so that no field is lost in translation.
var (
	bucketSandboxes  = []byte("sandboxes")
	bucketContainers = []byte("containers")
)

// sandboxRecord is the persisted state of one pod sandbox.
type sandboxRecord struct {
	ID             string                       `json:"id"`
	Name           string                       `json:"name"` // reserved name <name>_<namespace>_<uid>_<attempt>
	Config         *runtimeapi.PodSandboxConfig `json:"-"`
	ConfigProto    []byte                       `json:"config"`
	RuntimeHandler string                       `json:"runtimeHandler,omitempty"`
	State          runtimeapi.PodSandboxState   `json:"state"`
	CreatedAt      int64                        `json:"createdAt"` // unix nanoseconds
	NetNSPath      string                       `json:"netnsPath,omitempty"`
	IPs            []string                     `json:"ips,omitempty"`
	// NetworkReady is true while the CNI network is set up and not yet torn down.
	NetworkReady bool   `json:"networkReady"`
	CgroupParent string `json:"cgroupParent,omitempty"`
	// Pid and PidStartTime identify the pause process.
	Pid          int    `json:"pid"`
	PidStartTime uint64 `json:"pidStartTime"`
	// Stopped is set once StopPodSandbox has finished: containers and pause
	// killed, pause's runc container deleted, network torn down, netns
	// removed. A sandbox is never started again, so later stops are no-ops.
	Stopped bool `json:"stopped,omitempty"`
}

// containerRecord is the persisted state of one container.
type containerRecord struct {
	ID          string                      `json:"id"`
	Name        string                      `json:"name"` // reserved name
	SandboxID   string                      `json:"sandboxId"`
	Config      *runtimeapi.ContainerConfig `json:"-"`
	ConfigProto []byte                      `json:"config"`
	// ImageRef is the image ID (config digest); ImageName what the config asked for.
	ImageRef  string `json:"imageRef"`
	ImageName string `json:"imageName"`
	// RepoDigest is the image's repo digest if it has one (ContainerStatus.ImageRef);
	// RepoTag its first tag (ContainerStatus.Image), as containerd reports them.
	RepoDigest string                    `json:"repoDigest,omitempty"`
	RepoTag    string                    `json:"repoTag,omitempty"`
	State      runtimeapi.ContainerState `json:"state"`
	CreatedAt  int64                     `json:"createdAt"`
	StartedAt  int64                     `json:"startedAt,omitempty"`
	FinishedAt int64                     `json:"finishedAt,omitempty"`
	ExitCode   int32                     `json:"exitCode"`
	Reason     string                    `json:"reason,omitempty"`
	Message    string                    `json:"message,omitempty"`
	// Pid is the container's init process; MonitorPID and MonitorStartTime
	// identify its peapod-monitor.
	Pid              int    `json:"pid"`
	MonitorPID       int    `json:"monitorPid"`
	MonitorStartTime uint64 `json:"monitorStartTime"`
	LogPath          string `json:"logPath,omitempty"`
	CgroupPath       string `json:"cgroupPath"`
	StopSignal       string `json:"stopSignal,omitempty"`
	// UID, GID and Groups are the identity of the container's process
	// (ContainerStatus.User).
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

type metaStore struct {
	db *bolt.DB
}

func openStore(path string) (*metaStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 0})
	if err != nil {
		return nil, fmt.Errorf("open runtime metadata %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSandboxes, bucketContainers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialize runtime metadata %s: %w", path, err)
	}
	return &metaStore{db: db}, nil
}

func (m *metaStore) Close() error { return m.db.Close() }

func (m *metaStore) putSandbox(r *sandboxRecord) error {
	b, err := proto.Marshal(r.Config)
	if err != nil {
		return fmt.Errorf("encode sandbox %s config: %w", r.ID, err)
	}
	c := *r
	c.ConfigProto = b
	return m.put(bucketSandboxes, r.ID, &c)
}

func (m *metaStore) putContainer(r *containerRecord) error {
	b, err := proto.Marshal(r.Config)
	if err != nil {
		return fmt.Errorf("encode container %s config: %w", r.ID, err)
	}
	c := *r
	c.ConfigProto = b
	return m.put(bucketContainers, r.ID, &c)
}

func (m *metaStore) put(bucket []byte, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", bucket, id, err)
	}
	if err := m.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(id), data)
	}); err != nil {
		return fmt.Errorf("store %s %s: %w", bucket, id, err)
	}
	return nil
}

func (m *metaStore) delete(bucket []byte, id string) error {
	if err := m.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Delete([]byte(id))
	}); err != nil {
		return fmt.Errorf("delete %s %s: %w", bucket, id, err)
	}
	return nil
}

func (m *metaStore) loadAll() ([]*sandboxRecord, []*containerRecord, error) {
	var sbs []*sandboxRecord
	var ctrs []*containerRecord
	err := m.db.View(func(tx *bolt.Tx) error {
		var errs []error
		_ = tx.Bucket(bucketSandboxes).ForEach(func(k, v []byte) error {
			r := &sandboxRecord{}
			if err := json.Unmarshal(v, r); err != nil {
				errs = append(errs, fmt.Errorf("decode sandbox %s: %w", k, err))
				return nil
			}
			r.Config = &runtimeapi.PodSandboxConfig{}
			if err := proto.Unmarshal(r.ConfigProto, r.Config); err != nil {
				errs = append(errs, fmt.Errorf("decode sandbox %s config: %w", k, err))
				return nil
			}
			r.ConfigProto = nil
			sbs = append(sbs, r)
			return nil
		})
		_ = tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			r := &containerRecord{}
			if err := json.Unmarshal(v, r); err != nil {
				errs = append(errs, fmt.Errorf("decode container %s: %w", k, err))
				return nil
			}
			r.Config = &runtimeapi.ContainerConfig{}
			if err := proto.Unmarshal(r.ConfigProto, r.Config); err != nil {
				errs = append(errs, fmt.Errorf("decode container %s config: %w", k, err))
				return nil
			}
			r.ConfigProto = nil
			ctrs = append(ctrs, r)
			return nil
		})
		return errors.Join(errs...)
	})
	return sbs, ctrs, err
}
