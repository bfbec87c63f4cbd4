package registry

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod-dev/peapod/internal/store"
)

type nodeStrategy struct{}

func (nodeStrategy) prepareForCreate(ctx context.Context, r *Registry, obj store.Object) {}
func (nodeStrategy) validate(obj store.Object) field.ErrorList                           { return nil }
func (nodeStrategy) prepareForUpdate(obj, old store.Object) {
	obj.(*corev1.Node).Status = old.(*corev1.Node).Status
}
func (nodeStrategy) validateUpdate(obj, old store.Object) field.ErrorList { return nil }
func (nodeStrategy) prepareForStatusUpdate(obj, old store.Object) {
	n, oldN := obj.(*corev1.Node), old.(*corev1.Node)
	status, managed := n.Status, n.ManagedFields
	*n = *oldN.DeepCopy()
	n.Status, n.ManagedFields = status, managed
}
func (nodeStrategy) validateStatusUpdate(obj, old store.Object) field.ErrorList { return nil }

// NodeOptions describe the node beyond what is read from the machine.
type NodeOptions struct {
	// KubeletVersion is reported as nodeInfo.kubeletVersion (e.g. "v1.32.0-peapod").
	KubeletVersion string
	// ContainerRuntimeVersion, e.g. "peapod://0.1.0".
	ContainerRuntimeVersion string
	// RootDir is where pods' data lives; its file system is the node's
	// ephemeral-storage.
	RootDir string
}

// EnsureNode creates or refreshes the Node object named after this node:
// capacity from the machine, the Ready condition, nodeInfo and addresses.
func (r *Registry) EnsureNode(ctx context.Context, o NodeOptions) (*corev1.Node, error) {
	status, err := r.nodeStatus(o)
	if err != nil {
		return nil, err
	}
	res := r.resources["nodes"]
	obj, err := r.store.GuaranteedUpdate(ctx, "nodes", "", r.nodeName, nil, func(cur store.Object) (store.Object, error) {
		n := cur.(*corev1.Node)
		keepTransitionTimes(status.Conditions, n.Status.Conditions)
		n.Status = *status
		return n, nil
	})
	if apierrors.IsNotFound(toAPIError(err, res, r.nodeName)) {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: r.nodeName, Labels: map[string]string{
				corev1.LabelHostname:   r.nodeName,
				corev1.LabelOSStable:   goruntime.GOOS,
				corev1.LabelArchStable: goruntime.GOARCH,
			}},
			Status: *status,
		}
		obj, err = r.Create(ctx, res, "", node, nil)
		if err != nil {
			return nil, err
		}
		return obj.(*corev1.Node), nil
	}
	if err != nil {
		return nil, toAPIError(err, res, r.nodeName)
	}
	return obj.(*corev1.Node), nil
}

func keepTransitionTimes(conds, old []corev1.NodeCondition) {
	for i := range conds {
		for _, o := range old {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
}

func (r *Registry) nodeStatus(o NodeOptions) (*corev1.NodeStatus, error) {
	mem, err := memTotal()
	if err != nil {
		return nil, err
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	if o.RootDir != "" {
		var st unix.Statfs_t
		if err := unix.Statfs(o.RootDir, &st); err != nil {
			return nil, fmt.Errorf("statfs %s: %w", o.RootDir, err)
		}
		capacity[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(st.Blocks)*st.Bsize, resource.BinarySI)
	}
	now := r.now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	status := &corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
		Addresses: nodeAddresses(r.nodeName),
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               readTrimmed("/etc/machine-id"),
			BootID:                  readTrimmed("/proc/sys/kernel/random/boot_id"),
			KernelVersion:           unix.ByteSliceToString(uts.Release[:]),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: o.ContainerRuntimeVersion,
			KubeletVersion:          o.KubeletVersion,
			OperatingSystem:         goruntime.GOOS,
			Architecture:            goruntime.GOARCH,
		},
	}
	return status, nil
}

// nodeAddresses reports the host's primary IPv4 address (that of the
// default route's interface, else the first global one) and its name.
func nodeAddresses(hostname string) []corev1.NodeAddress {
	addrs := []corev1.NodeAddress{}
	if ip := primaryIP(); ip != "" {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	return append(addrs, corev1.NodeAddress{Type: corev1.NodeHostName, Address: hostname})
}

func primaryIP() string {
	// A UDP "connection" only selects the source address; nothing is sent.
	if c, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).IP.String()
	}
	ifaces, _ := net.InterfaceAddrs()
	for _, a := range ifaces {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

func memTotal() (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read memory size: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse MemTotal: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

func osImage() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
