package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/netns"
)

const realPlugins = "/usr/lib/cni"

func requirePrereqs(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(realPlugins, p)); err != nil {
			missing = append(missing, "CNI plugin "+p+" (apt-get install containernetworking-plugins)")
		}
	}
	for _, tool := range []string{"ip", "iptables", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing prerequisites (CI=true, refusing to skip): %s", strings.Join(missing, ", "))
	}
	t.Skipf("missing prerequisites: %s", strings.Join(missing, ", "))
}

type env struct {
	cfg    Config
	nsDir  string
	bridge string
}

// newEnv prepares directories and a bridge name the test owns; cleanup
// deletes the bridge (the plugin never does) and the netns dir mount.
func newEnv(t testing.TB, bridge, subnet string) *env {
	t.Helper()
	requirePrereqs(t)
	if linkExists(t, bridge) {
		t.Fatalf("bridge %s exists before the test; remove it (ip link del %s)", bridge, bridge)
	}
	root := t.TempDir()
	e := &env{
		cfg: Config{
			PluginDirs: []string{realPlugins},
			ConfDir:    filepath.Join(root, "net.d"),
			CacheDir:   filepath.Join(root, "cache"),
			IPAMDir:    filepath.Join(root, "ipam"),
			Bridge:     bridge,
			Subnet:     subnet,
		},
		nsDir:  filepath.Join(root, "netns"),
		bridge: bridge,
	}
	t.Cleanup(func() {
		unix.Unmount(e.nsDir, unix.MNT_DETACH)
		if linkExists(t, bridge) {
			if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil {
				t.Errorf("delete bridge %s: %v: %s", bridge, err, out)
			}
		}
		if linkExists(t, bridge) {
			t.Errorf("bridge %s still exists", bridge)
		}
		// The node-wide masquerade stays with the bridge; it goes with it.
		if err := deleteChain(context.Background(), "iptables", "PEAPOD-MASQ-"+bridge); err != nil {
			t.Errorf("delete masquerade chain of %s: %v", bridge, err)
		}
	})
	return e
}

func linkExists(t testing.TB, name string) bool {
	t.Helper()
	_, err := net.InterfaceByName(name)
	return err == nil
}

// bridgePorts lists the interfaces enslaved to the bridge (the pods' veths).
func bridgePorts(t testing.TB, bridge string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "master", bridge).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show master %s: %v: %s", bridge, err, out)
	}
	var ports []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 1 {
			ports = append(ports, strings.TrimSuffix(f[1], ":"))
		}
	}
	return ports
}

// natRulesFor returns the iptables nat lines that mention sandbox id (the
// bridge's masquerade and portmap's DNAT rules carry it in a comment).
func natRulesFor(t testing.TB, id string) []string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, id) {
			lines = append(lines, l)
		}
	}
	return lines
}

func leases(t testing.TB, cfg Config) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(cfg.IPAMDir, DefaultNetwork))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

func cachedResults(t testing.TB, cfg Config) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(cfg.CacheDir, "results"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano())
}

// checkClean verifies that nothing of the sandboxes is left on the host.
func checkClean(t testing.TB, e *env, ids ...string) {
	t.Helper()
	if l := leases(t, e.cfg); len(l) > 0 {
		t.Errorf("leases left: %v", l)
	}
	if c := cachedResults(t, e.cfg); len(c) > 0 {
		t.Errorf("libcni cache entries left: %v", c)
	}
	for _, id := range ids {
		if r := natRulesFor(t, id); len(r) > 0 {
			t.Errorf("iptables nat rules left for %s: %v", id, r)
		}
	}
	if linkExists(t, e.bridge) {
		if p := bridgePorts(t, e.bridge); len(p) > 0 {
			t.Errorf("veths left on %s: %v", e.bridge, p)
		}
	}
}

// waitNoPorts waits until the kernel has destroyed the veths of namespaces
// that were removed (namespace cleanup runs asynchronously in the kernel).
func waitNoPorts(t *testing.T, bridge string) {
	t.Helper()
	for len(bridgePorts(t, bridge)) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
}

// echoServer listens in the namespace; the listener keeps the namespace
// alive until it is closed (done by cleanup, or earlier by the caller).
func echoServer(t *testing.T, nsPath, addr string) (port int, ln net.Listener) {
	t.Helper()
	if err := netns.Do(nsPath, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, ln
}

func echo(t *testing.T, fromNS, addr string) {
	t.Helper()
	var c net.Conn
	if err := netns.Do(fromNS, func() (err error) {
		c, err = net.Dial("tcp4", addr)
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s: %v", addr, fromNS, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "ping\n" {
		t.Fatalf("echo via %s: %q, %v", addr, got, err)
	}
}

func TestTwoPods(t *testing.T) {
	e := newEnv(t, "ppnet0", "10.200.31.0/24")
	m, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Status(); err != nil {
		t.Fatalf("Status: %v", err)
	}
	ctx := context.Background()
	_, subnet, _ := net.ParseCIDR(e.cfg.Subnet)

	type pod struct {
		id, ns string
		pn     PodNetwork
		ip     net.IP
	}
	pods := []*pod{
		{id: uniqueID("pptest-a"), pn: PodNetwork{Name: "a", Namespace: "default", UID: "uid-a"}},
		{id: uniqueID("pptest-b"), pn: PodNetwork{Name: "b", Namespace: "default", UID: "uid-b",
			PortMappings: []PortMapping{{HostPort: 38471, ContainerPort: 8080}}}},
	}
	for _, p := range pods {
		p.ns, err = netns.New(e.nsDir, p.id)
		if err != nil {
			t.Fatal(err)
		}
		defer netns.Remove(p.ns)
		res, err := m.Setup(ctx, p.id, p.ns, p.pn)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Teardown(ctx, p.id, p.ns, p.pn)
		if len(res.IPs) != 1 || !subnet.Contains(res.IPs[0]) {
			t.Fatalf("pod %s IPs %v, want one in %s", p.id, res.IPs, subnet)
		}
		p.ip = res.IPs[0]
	}
	a, b := pods[0], pods[1]
	if a.ip.Equal(b.ip) {
		t.Fatalf("both pods got %s", a.ip)
	}
	if got := len(leases(t, e.cfg)); got != 2 {
		t.Fatalf("%d leases, want 2", got)
	}
	if got := len(bridgePorts(t, e.bridge)); got != 2 {
		t.Fatalf("%d veths on the bridge, want 2", got)
	}
	// NAT to the outside: the subnet's one masquerade rule, none per pod.
	nat, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, nat)
	}
	for _, want := range []string{
		"-A POSTROUTING -s " + subnet.String() + ` -m comment --comment "peapod: masquerade the pods of ` + e.bridge + `" -j PEAPOD-MASQ-` + e.bridge,
		"-A PEAPOD-MASQ-" + e.bridge + " -d " + subnet.String() + " -j ACCEPT",
		"-A PEAPOD-MASQ-" + e.bridge + " ! -d 224.0.0.0/4 -j MASQUERADE",
	} {
		if !strings.Contains(string(nat), want+"\n") {
			t.Errorf("nat table lacks %q", want)
		}
	}
	if r := natRulesFor(t, a.id); len(r) > 0 {
		t.Errorf("pod a without ports has nat rules of its own: %v", r)
	}

	// Pod to pod across the bridge, loopback inside a pod, and the host
	// reaching pod b through its published port on the bridge address and
	// on localhost.
	port, bln := echoServer(t, b.ns, ":8080")
	echo(t, a.ns, net.JoinHostPort(b.ip.String(), strconv.Itoa(port)))
	loPort, _ := echoServer(t, a.ns, "127.0.0.1:0")
	echo(t, a.ns, net.JoinHostPort("127.0.0.1", strconv.Itoa(loPort)))
	gw := make(net.IP, len(subnet.IP.To4()))
	copy(gw, subnet.IP.To4())
	gw[3]++
	echo(t, "/proc/self/ns/net", net.JoinHostPort(gw.String(), "38471"))
	echo(t, "/proc/self/ns/net", "127.0.0.1:38471")
	// Hairpin: pod b reaches itself through its own published port.
	echo(t, b.ns, net.JoinHostPort(gw.String(), "38471"))

	// a: normal teardown while its namespace exists.
	if err := m.Teardown(ctx, a.id, a.ns, a.pn); err != nil {
		t.Fatal(err)
	}
	// b: the namespace is gone first (as after a crash); the lease, port
	// mappings and masquerade rules must still go.
	bln.Close()
	if err := netns.Remove(b.ns); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, b.id, b.ns, b.pn); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if err := m.Teardown(ctx, p.id, p.ns, p.pn); err != nil {
			t.Fatalf("second Teardown of %s: %v", p.id, err)
		}
	}
	waitNoPorts(t, e.bridge)
	checkClean(t, e, a.id, b.id)
}

func TestSetupFailureLeavesNothing(t *testing.T) {
	e := newEnv(t, "ppnetf0", "10.200.32.0/24")
	// A plugin dir with the real plugins and a portmap that fails ADD, the
	// last step: bridge and IPAM have done their work by then.
	pdir := t.TempDir()
	ents, err := os.ReadDir(realPlugins)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if ent.Name() == "portmap" {
			continue
		}
		if err := os.Symlink(filepath.Join(realPlugins, ent.Name()), filepath.Join(pdir, ent.Name())); err != nil {
			t.Fatal(err)
		}
	}
	wrapper := `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then
	echo '{"cniVersion":"1.0.0","code":999,"msg":"injected portmap failure"}'
	exit 1
fi
exec ` + realPlugins + `/portmap "$@"
`
	if err := os.WriteFile(filepath.Join(pdir, "portmap"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg.PluginDirs = []string{pdir}
	m, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := uniqueID("pptest-f")
	ns, err := netns.New(e.nsDir, id)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Remove(ns)
	pn := PodNetwork{Name: "f", Namespace: "default", UID: "uid-f",
		PortMappings: []PortMapping{{HostPort: 38472, ContainerPort: 80}}}
	_, err = m.Setup(context.Background(), id, ns, pn)
	if err == nil || !strings.Contains(err.Error(), "injected portmap failure") {
		t.Fatalf("Setup = %v, want the injected failure", err)
	}
	checkClean(t, e, id)
	// A pod that publishes no port does not run portmap at all.
	idOK := uniqueID("pptest-f")
	nsOK, err := netns.New(e.nsDir, idOK)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Remove(nsOK)
	pnOK := PodNetwork{Name: "f2", Namespace: "default", UID: "uid-f2"}
	if _, err := m.Setup(context.Background(), idOK, nsOK, pnOK); err != nil {
		t.Fatalf("Setup without ports ran portmap: %v", err)
	}
	if err := m.Teardown(context.Background(), idOK, nsOK, pnOK); err != nil {
		t.Fatal(err)
	}
	checkClean(t, e, idOK)
	// Nothing is left inside the namespace either: only lo, and it is down
	// again after the loopback plugin's DEL.
	var names []string
	if err := netns.Do(ns, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "lo" {
		t.Fatalf("interfaces left in the netns: %v", names)
	}
}

func TestNewMissingPlugin(t *testing.T) {
	root := t.TempDir()
	cfg := Config{
		PluginDirs: []string{filepath.Join(root, "empty")},
		ConfDir:    filepath.Join(root, "net.d"),
		CacheDir:   filepath.Join(root, "cache"),
		IPAMDir:    filepath.Join(root, "ipam"),
	}
	_, err := New(cfg)
	if !errors.Is(err, ErrPluginNotFound) {
		t.Fatalf("New = %v, want ErrPluginNotFound", err)
	}
	for _, want := range []string{"bridge", "host-local", "portmap", "loopback", DebianPackage} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestDefaultConfKeepsExisting(t *testing.T) {
	requirePrereqs(t)
	root := t.TempDir()
	cfg := Config{
		PluginDirs: []string{realPlugins},
		ConfDir:    filepath.Join(root, "net.d"),
		CacheDir:   filepath.Join(root, "cache"),
		IPAMDir:    filepath.Join(root, "ipam"),
	}
	if err := os.MkdirAll(cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	own := `{"cniVersion":"1.0.0","name":"mine","plugins":[{"type":"bridge","bridge":"ppmine0","ipam":{"type":"host-local","subnet":"10.200.33.0/24"}}]}`
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "50-mine.conflist"), []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "mine" {
		t.Fatalf("network %q, want mine", m.Name())
	}
	if _, err := os.Stat(filepath.Join(cfg.ConfDir, DefaultConfFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("default conf written next to an existing one: %v", err)
	}

	// An empty dir gets the default network, with the configured bridge,
	// subnet and lease dir.
	cfg.ConfDir = filepath.Join(root, "net2.d")
	cfg.Bridge, cfg.Subnet = "ppx0", "10.200.34.0/24"
	m, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.ConfDir, DefaultConfFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ppx0"`, `"10.200.34.0/24"`, strconv.Quote(cfg.IPAMDir), `"portmap"`, `"hairpinMode": true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("default conf lacks %s:\n%s", want, b)
		}
	}
	if m.Name() != DefaultNetwork {
		t.Fatalf("network %q, want %s", m.Name(), DefaultNetwork)
	}
}

func TestParallelSetup(t *testing.T) {
	e := newEnv(t, "ppnetp0", "10.200.35.0/24")
	m, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 8
	ids := make([]string, n)
	paths := make([]string, n)
	for i := range ids {
		ids[i] = uniqueID(fmt.Sprintf("pptest-p%d", i))
		if paths[i], err = netns.New(e.nsDir, ids[i]); err != nil {
			t.Fatal(err)
		}
		defer netns.Remove(paths[i])
	}
	type out struct {
		i   int
		res *Result
		err error
	}
	results := make(chan out, n)
	for i := range ids {
		go func() {
			res, err := m.Setup(ctx, ids[i], paths[i], PodNetwork{Name: ids[i], Namespace: "default", UID: ids[i]})
			results <- out{i, res, err}
		}()
	}
	seen := map[string]bool{}
	for range ids {
		o := <-results
		if o.err != nil {
			t.Errorf("Setup %d: %v", o.i, o.err)
			continue
		}
		defer m.Teardown(ctx, ids[o.i], paths[o.i], PodNetwork{})
		ip := o.res.IPs[0].String()
		if seen[ip] {
			t.Errorf("address %s given twice", ip)
		}
		seen[ip] = true
	}
	if t.Failed() {
		return
	}
	errs := make(chan error, n)
	for i := range ids {
		// Teardown as recovery does it, knowing only the sandbox id.
		go func() { errs <- m.Teardown(ctx, ids[i], paths[i], PodNetwork{}) }()
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	checkClean(t, e, ids...)
}

func TestStatusNoticesMissingPlugin(t *testing.T) {
	requirePrereqs(t)
	root := t.TempDir()
	pdir := filepath.Join(root, "plugins")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if err := os.Symlink(filepath.Join(realPlugins, p), filepath.Join(pdir, p)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := New(Config{PluginDirs: []string{pdir}, ConfDir: filepath.Join(root, "net.d"),
		CacheDir: filepath.Join(root, "cache"), IPAMDir: filepath.Join(root, "ipam")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Status(); err != nil {
		t.Fatalf("Status = %v", err)
	}
	for _, p := range []string{"portmap", "host-local"} {
		if err := os.Remove(filepath.Join(pdir, p)); err != nil {
			t.Fatal(err)
		}
		if err := m.Status(); !errors.Is(err, ErrPluginNotFound) || !strings.Contains(err.Error(), p) {
			t.Fatalf("Status without %s = %v", p, err)
		}
	}
}

func TestGCReleasesUnknownSandboxes(t *testing.T) {
	e := newEnv(t, "ppnetg0", "10.200.38.0/24")
	m, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keep, lost, crashed := uniqueID("pptest-keep"), uniqueID("pptest-lost"), uniqueID("pptest-crash")
	paths := map[string]string{}
	for _, id := range []string{keep, lost, crashed} {
		p, err := netns.New(e.nsDir, id)
		if err != nil {
			t.Fatal(err)
		}
		defer netns.Remove(p)
		if _, err := m.Setup(ctx, id, p, PodNetwork{Name: id, Namespace: "default", UID: id,
			PortMappings: []PortMapping{{HostPort: 38473, ContainerPort: 80, HostIP: "127.0.0.2"}}}); err != nil {
			if id != keep {
				t.Fatal(err)
			}
		}
		defer m.Teardown(ctx, id, p, PodNetwork{})
		paths[id] = p
	}
	// As after a reboot: the pins are gone; for "crashed" the daemon died
	// before libcni cached the result, so only the lease tells.
	for _, id := range []string{lost, crashed} {
		if err := netns.Remove(paths[id]); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(e.cfg.CacheDir, "results", "*"+crashed+"*"))
	if len(files) != 2 {
		t.Fatalf("cache files of %s: %v, want eth0 and lo", crashed, files)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}

	if err := m.GC(ctx, func(id string) bool { return id == keep }); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{lost, crashed} {
		if r := natRulesFor(t, id); len(r) > 0 {
			t.Errorf("nat rules left for %s: %v", id, r)
		}
	}
	if l := leases(t, e.cfg); len(l) != 1 {
		t.Errorf("leases after GC: %v, want only the kept sandbox's", l)
	}
	if len(natRulesFor(t, keep)) == 0 {
		t.Error("GC removed the kept sandbox's rules")
	}
	if err := m.Teardown(ctx, keep, paths[keep], PodNetwork{}); err != nil {
		t.Fatal(err)
	}
	waitNoPorts(t, e.bridge)
	checkClean(t, e, keep, lost, crashed)
}
