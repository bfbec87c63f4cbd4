// Package network attaches pod network namespaces to the node's CNI network
// with libcni and the standard plugins, as containerd's CRI plugin does: the
// loopback plugin on lo, then the network list (bridge + host-local IPAM +
// portmap by default) on eth0.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/log"
)

// Defaults used when Config leaves a field empty.
const (
	DefaultBridge     = "peapod0"
	DefaultSubnet     = "10.87.0.0/16"
	DefaultNetwork    = "peapod"
	DefaultConfFile   = "10-peapod.conflist"
	DefaultCNIVersion = "1.0.0"
	// DebianPackage provides the standard plugins on Debian and Ubuntu.
	DebianPackage = "containernetworking-plugins"

	ifName     = "eth0"
	loName     = "lo"
	loNetwork  = "cni-loopback"
	loopback   = "loopback"
	capPortMap = "portMappings"
)

// DefaultPluginDirs is where Debian (and upstream) install the CNI plugins.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

var (
	// ErrPluginNotFound means a plugin the network needs is not installed.
	ErrPluginNotFound = errors.New("CNI plugin not found")
	// ErrNoConfig means the configuration directory holds no usable network.
	ErrNoConfig = errors.New("no CNI network configuration")
)

// Config says where the plugins and the network's state live.
type Config struct {
	PluginDirs []string // searched in order; DefaultPluginDirs when empty
	ConfDir    string   // network configuration (the first file in name order is used)
	CacheDir   string   // libcni's cache of results, needed for DEL
	IPAMDir    string   // host-local leases of the default network
	Bridge     string   // bridge of the default network; DefaultBridge when empty
	Subnet     string   // subnet of the default network; DefaultSubnet when empty
}

// PortMapping is a port of the pod published on the host (portmap plugin).
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // tcp, udp or sctp; tcp when empty
	HostIP        string // all host addresses when empty
}

// PodNetwork identifies the pod to the plugins (CNI_ARGS) and carries its
// port mappings.
type PodNetwork struct {
	Name, Namespace, UID string
	PortMappings         []PortMapping
}

// Result is what Setup gave the pod.
type Result struct {
	IPs []net.IP // addresses of the pod's eth0
}

// Manager runs the CNI plugins for pods.
type Manager struct {
	cni  *libcni.CNIConfig
	dirs []string
	list *libcni.NetworkConfigList
	// noPorts is list without the plugins that take port mappings, for
	// pods that publish none; nil when list has no such plugin.
	noPorts  *libcni.NetworkConfigList
	lo       *libcni.NetworkConfigList
	confFile string
	ipamDir  string
	// nodeMasq is the node-wide masquerade of the default network; nil for
	// a network of the user's.
	nodeMasq *nodeMasquerade
}

// New loads the network configuration from cfg.ConfDir, writing the default
// one there first if the directory holds none, and checks that every plugin
// it names is installed.
func New(cfg Config) (*Manager, error) {
	if cfg.ConfDir == "" || cfg.CacheDir == "" || cfg.IPAMDir == "" {
		return nil, errors.New("network: ConfDir, CacheDir and IPAMDir are required")
	}
	dirs := cfg.PluginDirs
	if len(dirs) == 0 {
		dirs = DefaultPluginDirs
	}
	if err := writeDefaultConf(cfg); err != nil {
		return nil, err
	}
	file, list, err := loadConf(cfg.ConfDir)
	if err != nil {
		return nil, err
	}
	lo, err := libcni.ConfListFromBytes([]byte(fmt.Sprintf(
		`{"cniVersion":%q,"name":%q,"plugins":[{"type":%q}]}`, list.CNIVersion, loNetwork, loopback)))
	if err != nil {
		return nil, fmt.Errorf("network: loopback configuration: %w", err)
	}
	m := &Manager{
		// An explicit exec: libcni creates its default lazily, which races
		// when sandboxes are set up concurrently.
		cni: libcni.NewCNIConfigWithCacheDir(dirs, cfg.CacheDir, &invoke.DefaultExec{
			RawExec:       &invoke.RawExec{Stderr: os.Stderr},
			PluginDecoder: version.PluginDecoder{},
		}),
		dirs:     dirs,
		list:     list,
		lo:       lo,
		confFile: file,
		ipamDir:  cfg.IPAMDir,
	}
	if m.noPorts, err = withoutPortMapping(list); err != nil {
		return nil, err
	}
	if filepath.Base(file) == DefaultConfFile && list.Name == DefaultNetwork {
		if m.nodeMasq, err = defaultNodeMasquerade(list); err != nil {
			return nil, err
		}
	}
	if err := m.Status(); err != nil {
		return nil, err
	}
	return m, nil
}

// withoutPortMapping returns the list without its plugins that take port
// mappings (portmap), or nil when it has none: running them for a pod that
// publishes no port costs a plugin process and its iptables calls on ADD and
// DEL for nothing.
func withoutPortMapping(list *libcni.NetworkConfigList) (*libcni.NetworkConfigList, error) {
	var raw struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, fmt.Errorf("network: decode %s: %w", list.Name, err)
	}
	kept := raw.Plugins[:0]
	for i, p := range list.Plugins {
		if !p.Network.Capabilities[capPortMap] {
			kept = append(kept, raw.Plugins[i])
		}
	}
	if len(kept) == len(list.Plugins) || len(kept) == 0 {
		return nil, nil
	}
	var whole map[string]any
	if err := json.Unmarshal(list.Bytes, &whole); err != nil {
		return nil, fmt.Errorf("network: decode %s: %w", list.Name, err)
	}
	whole["plugins"] = kept
	b, err := json.Marshal(whole)
	if err != nil {
		return nil, fmt.Errorf("network: encode %s without port mapping: %w", list.Name, err)
	}
	l, err := libcni.ConfListFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("network: %s without port mapping: %w", list.Name, err)
	}
	return l, nil
}

// listFor is the network list to run for a pod with or without published
// ports.
func (m *Manager) listFor(ports bool) *libcni.NetworkConfigList {
	if ports || m.noPorts == nil {
		return m.list
	}
	return m.noPorts
}

// Status returns nil when the network is ready for pods: its configuration
// is loaded and every plugin it needs is installed.
func (m *Manager) Status() error {
	var missing []string
	for _, l := range []*libcni.NetworkConfigList{m.lo, m.list} {
		for _, p := range l.Plugins {
			// A plugin's IPAM plugin (host-local) is a binary of its own.
			for _, typ := range []string{p.Network.Type, p.Network.IPAM.Type} {
				if typ == "" || slices.Contains(missing, typ) {
					continue
				}
				if _, err := invoke.FindInPath(typ, m.dirs); err != nil {
					missing = append(missing, typ)
				}
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("network %q (%s): %w: %s not in %s; install the Debian package %s",
			m.list.Name, m.confFile, ErrPluginNotFound, strings.Join(missing, ", "),
			strings.Join(m.dirs, ":"), DebianPackage)
	}
	return nil
}

// Name is the name of the network pods are attached to.
func (m *Manager) Name() string { return m.list.Name }

// Setup attaches the network namespace at netnsPath to the network. On
// failure it undoes what it did.
func (m *Manager) Setup(ctx context.Context, id, netnsPath string, o PodNetwork) (_ *Result, retErr error) {
	lg := log.FromContext(ctx).With("sandbox", id, "netns", netnsPath)
	if m.nodeMasq != nil {
		if err := m.nodeMasq.ensure(ctx); err != nil {
			return nil, fmt.Errorf("set up network %q of sandbox %s: %w", m.list.Name, id, err)
		}
	}
	loRT := m.runtimeConf(id, netnsPath, loName, o, false)
	rt := m.runtimeConf(id, netnsPath, ifName, o, true)
	list := m.listFor(len(o.PortMappings) > 0)
	defer func() {
		if retErr != nil {
			// What succeeded holds addresses, links and rules; DEL of what
			// did not is harmless.
			m.undo(lg, list, rt)
			m.undo(lg, m.lo, loRT)
		}
	}()
	// Loopback and the network touch different interfaces, so they are set
	// up side by side, as go-cni attaches networks.
	loErr := make(chan error, 1)
	go func() {
		_, err := m.cni.AddNetworkList(ctx, m.lo, loRT)
		loErr <- err
	}()
	r, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		err = fmt.Errorf("set up network %q of sandbox %s: %w", m.list.Name, id, err)
	}
	if lerr := <-loErr; lerr != nil {
		err = errors.Join(err, fmt.Errorf("set up loopback of sandbox %s: %w", id, lerr))
	}
	if err != nil {
		return nil, err
	}
	result, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, fmt.Errorf("network %q result for sandbox %s: %w", m.list.Name, id, err)
	}
	ips := podIPs(result)
	if len(ips) == 0 {
		return nil, fmt.Errorf("network %q gave sandbox %s no address", m.list.Name, id)
	}
	lg.Debug("pod network set up", "ips", ips)
	return &Result{IPs: ips}, nil
}

// undo runs DEL after a failed or abandoned ADD; it runs on a fresh context
// so that a cancelled caller does not leave the half-made network behind.
func (m *Manager) undo(lg *slog.Logger, l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	if err := m.cni.DelNetworkList(context.Background(), l, rt); err != nil {
		lg.Warn("undo CNI ADD", "network", l.Name, "err", err)
	}
}

// Teardown detaches the sandbox from the network and releases its address.
// It is idempotent, and works when the namespace is already gone: the
// plugins then release the lease and port mappings, and the masquerade rule
// is removed by name.
func (m *Manager) Teardown(ctx context.Context, id, netnsPath string, o PodNetwork) error {
	lg := log.FromContext(ctx).With("sandbox", id, "netns", netnsPath)
	gone := !isNetns(netnsPath)
	if gone {
		// An empty path tells the plugins to skip what lives in the namespace.
		netnsPath = ""
	}
	loErr := make(chan error, 1)
	go func() {
		if err := m.cni.DelNetworkList(ctx, m.lo, m.runtimeConf(id, netnsPath, loName, o, false)); err != nil {
			loErr <- fmt.Errorf("tear down loopback of sandbox %s: %w", id, err)
			return
		}
		loErr <- nil
	}()
	err := m.teardown(ctx, id, netnsPath, o, gone)
	if err != nil {
		err = fmt.Errorf("tear down network %q of sandbox %s: %w", m.list.Name, id, err)
	}
	if err := errors.Join(err, <-loErr); err != nil {
		return err
	}
	lg.Debug("pod network torn down")
	return nil
}

func (m *Manager) teardown(ctx context.Context, id, netnsPath string, o PodNetwork, gone bool) error {
	rt := m.runtimeConf(id, netnsPath, ifName, o, true)
	ports := len(o.PortMappings) > 0
	if !ports {
		caps, err := m.cachedCapabilities(rt)
		if err != nil {
			return err
		}
		rt.CapabilityArgs = caps
		ports = caps[capPortMap] != nil
	}
	list := m.listFor(ports)
	var cached []net.IP
	if gone {
		if r, err := m.cni.GetNetworkListCachedResult(m.list, rt); err == nil && r != nil {
			if res, err := types100.NewResultFromResult(r); err == nil {
				cached = podIPs(res)
			}
		}
	}
	if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
		return err
	}
	if gone {
		return m.removeMasquerade(ctx, id, cached)
	}
	return nil
}

// placeholderPorts stands for port mappings nobody recorded. The portmap
// plugin skips DEL when given none, but removes its rules by sandbox id, so
// any mapping makes it clean up.
var placeholderPorts = []map[string]any{{"hostPort": 1, "containerPort": 1, "protocol": "tcp"}}

// cachedCapabilities returns the capability arguments (port mappings) ADD
// was given, from libcni's cache, for a DEL whose caller does not know them
// (recovery, GC). Without a cache entry ADD may have died half-way, so DEL
// gets placeholder mappings to be safe.
func (m *Manager) cachedCapabilities(rt *libcni.RuntimeConf) (map[string]any, error) {
	_, cached, err := m.cni.GetNetworkListCachedConfig(m.list, rt)
	if err != nil {
		return nil, fmt.Errorf("read libcni cache: %w", err)
	}
	if cached == nil {
		return map[string]any{capPortMap: placeholderPorts}, nil
	}
	return cached.CapabilityArgs, nil
}

func (m *Manager) runtimeConf(id, netnsPath, ifname string, o PodNetwork, withPorts bool) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       netnsPath,
		IfName:      ifname,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", o.Namespace},
			{"K8S_POD_NAME", o.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", id},
			{"K8S_POD_UID", o.UID},
		},
	}
	if withPorts && len(o.PortMappings) > 0 {
		pm := make([]map[string]any, 0, len(o.PortMappings))
		for _, p := range o.PortMappings {
			proto := strings.ToLower(p.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			e := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": proto}
			if p.HostIP != "" {
				e["hostIP"] = p.HostIP
			}
			pm = append(pm, e)
		}
		rt.CapabilityArgs = map[string]any{capPortMap: pm}
	}
	return rt
}

// podIPs returns the addresses on interfaces inside the sandbox, or every
// address when the plugins did not say which interface holds it.
func podIPs(r *types100.Result) []net.IP {
	var ips []net.IP
	for _, ip := range r.IPs {
		if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(r.Interfaces) &&
			r.Interfaces[*ip.Interface].Sandbox == "" {
			continue
		}
		ips = append(ips, ip.Address.IP)
	}
	return ips
}

// isNetns reports whether path is a (pinned) network namespace file.
func isNetns(path string) bool {
	if path == "" {
		return false
	}
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

func confFiles(dir string) ([]string, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("network: read %s: %w", dir, err)
	}
	slices.Sort(files)
	return files, nil
}

// loadConf loads the first configuration in dir, by file name, as containerd does.
func loadConf(dir string) (string, *libcni.NetworkConfigList, error) {
	files, err := confFiles(dir)
	if err != nil {
		return "", nil, err
	}
	if len(files) == 0 {
		return "", nil, fmt.Errorf("network: %w in %s", ErrNoConfig, dir)
	}
	f := files[0]
	var list *libcni.NetworkConfigList
	if strings.HasSuffix(f, ".conflist") {
		list, err = libcni.ConfListFromFile(f)
	} else {
		var c *libcni.PluginConfig
		if c, err = libcni.ConfFromFile(f); err == nil {
			list, err = libcni.ConfListFromConf(c)
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("network: load %s: %w", f, err)
	}
	if len(list.Plugins) == 0 {
		return "", nil, fmt.Errorf("network: %w: %s has no plugins", ErrNoConfig, f)
	}
	return f, list, nil
}

// writeDefaultConf writes the default network into cfg.ConfDir unless that
// directory already holds a configuration.
func writeDefaultConf(cfg Config) error {
	for _, d := range []string{cfg.ConfDir, cfg.CacheDir, cfg.IPAMDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("network: %w", err)
		}
	}
	files, err := confFiles(cfg.ConfDir)
	if err != nil || len(files) > 0 {
		return err
	}
	b, err := DefaultConfList(cfg)
	if err != nil {
		return err
	}
	dst := filepath.Join(cfg.ConfDir, DefaultConfFile)
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("network: write default configuration: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("network: write default configuration: %w", err)
	}
	return nil
}

// DefaultConfList is the configuration New writes when there is none: a
// bridge with host-local addresses from cfg.Subnet, hairpin so a pod reaches
// itself through its own published ports, and portmap for hostPort. NAT to
// the outside is one node-wide masquerade rule for the subnet that the
// Manager adds (nodeMasquerade), not the bridge plugin's ipMasq, which adds
// and removes a chain per pod: a handful of iptables runs on every pod start
// and stop.
func DefaultConfList(cfg Config) ([]byte, error) {
	bridge, subnet := cfg.Bridge, cfg.Subnet
	if bridge == "" {
		bridge = DefaultBridge
	}
	if subnet == "" {
		subnet = DefaultSubnet
	}
	if _, _, err := net.ParseCIDR(subnet); err != nil {
		return nil, fmt.Errorf("network: subnet %q: %w", subnet, err)
	}
	conf := map[string]any{
		"cniVersion": DefaultCNIVersion,
		"name":       DefaultNetwork,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": subnet}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": cfg.IPAMDir,
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{capPortMap: true},
			},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("network: encode default configuration: %w", err)
	}
	return append(b, '\n'), nil
}
