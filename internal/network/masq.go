package network

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
)

// removeMasquerade deletes the NAT chain the bridge plugin made for sandbox
// id. The plugin's own DEL finds that chain from the addresses on the pod's
// interface, so it cannot when the namespace is already gone; the chain name
// is a hash of network name and id (the plugins' utils.FormatChainName).
func (m *Manager) removeMasquerade(ctx context.Context, id string, ips []net.IP) error {
	if !m.masquerades() {
		return nil
	}
	sum := sha512.Sum512([]byte(m.list.Name + id))
	chain := ("CNI-" + fmt.Sprintf("%x", sum))[:28]
	tools := []string{"iptables"}
	if slices.ContainsFunc(ips, func(ip net.IP) bool { return ip.To4() == nil }) {
		tools = append(tools, "ip6tables")
	}
	for _, tool := range tools {
		if err := deleteChain(ctx, tool, chain); err != nil {
			return err
		}
	}
	return nil
}

// masquerades reports whether a bridge plugin of the network has ipMasq set.
func (m *Manager) masquerades() bool {
	for _, p := range m.list.Plugins {
		var c struct {
			Type   string `json:"type"`
			IPMasq bool   `json:"ipMasq"`
		}
		if json.Unmarshal(p.Bytes, &c) == nil && c.Type == "bridge" && c.IPMasq {
			return true
		}
	}
	return false
}

// deleteChain removes the POSTROUTING rules jumping to chain (by number, last
// first, so the numbers stay valid) and then the chain; a missing chain is
// not an error.
func deleteChain(ctx context.Context, tool, chain string) error {
	out, err := exec.CommandContext(ctx, tool, "-w", "-t", "nat", "-L", "POSTROUTING", "-n", "--line-numbers").Output()
	if err != nil {
		return fmt.Errorf("%s list nat POSTROUTING: %w", tool, err)
	}
	var nums []int
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 1 && f[1] == chain {
			if n, err := strconv.Atoi(f[0]); err == nil {
				nums = append(nums, n)
			}
		}
	}
	slices.Reverse(nums)
	for _, n := range nums {
		if out, err := exec.CommandContext(ctx, tool, "-w", "-t", "nat", "-D", "POSTROUTING", strconv.Itoa(n)).CombinedOutput(); err != nil {
			return fmt.Errorf("%s delete nat POSTROUTING rule %d: %w: %s", tool, n, err, bytes.TrimSpace(out))
		}
	}
	if exec.CommandContext(ctx, tool, "-w", "-t", "nat", "-n", "-L", chain).Run() != nil {
		return nil // no such chain
	}
	for _, op := range []string{"-F", "-X"} {
		if out, err := exec.CommandContext(ctx, tool, "-w", "-t", "nat", op, chain).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s nat %s: %w: %s", tool, op, chain, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// nodeMasquerade is the default network's NAT to the outside: one chain for
// the whole subnet, made once, instead of the bridge plugin's chain per pod.
// Like the bridge device, it stays when pods and the daemon go.
type nodeMasquerade struct {
	tool    string // iptables or ip6tables
	subnet  string
	chain   string
	bridge  string
	mu      sync.Mutex
	ensured bool
}

// defaultNodeMasquerade reads the bridge and subnet of peapod's default
// network; it returns nil when that bridge plugin masquerades itself (a
// configuration written before the node-wide rule).
func defaultNodeMasquerade(list *libcni.NetworkConfigList) (*nodeMasquerade, error) {
	for _, p := range list.Plugins {
		var c struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPMasq bool   `json:"ipMasq"`
			IPAM   struct {
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		}
		if err := json.Unmarshal(p.Bytes, &c); err != nil || c.Type != "bridge" {
			continue
		}
		if c.IPMasq {
			return nil, nil
		}
		if len(c.IPAM.Ranges) == 0 || len(c.IPAM.Ranges[0]) == 0 {
			return nil, fmt.Errorf("network: %s: the bridge plugin has no IPAM range", list.Name)
		}
		ip, subnet, err := net.ParseCIDR(c.IPAM.Ranges[0][0].Subnet)
		if err != nil {
			return nil, fmt.Errorf("network: %s: subnet: %w", list.Name, err)
		}
		nm := &nodeMasquerade{tool: "iptables", subnet: subnet.String(), bridge: c.Bridge}
		if ip.To4() == nil {
			nm.tool = "ip6tables"
		}
		// iptables chain names have at most 28 characters; bridge names 15.
		nm.chain = "PEAPOD-MASQ-" + c.Bridge
		return nm, nil
	}
	return nil, fmt.Errorf("network: %s has no bridge plugin", list.Name)
}

// ensure makes the chain and its rules once per Manager; each step checks
// first, so a chain left by an earlier daemon is reused as it is.
func (nm *nodeMasquerade) ensure(ctx context.Context) error {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	if nm.ensured {
		return nil
	}
	if exec.CommandContext(ctx, nm.tool, "-w", "-t", "nat", "-n", "-L", nm.chain).Run() != nil {
		if out, err := exec.CommandContext(ctx, nm.tool, "-w", "-t", "nat", "-N", nm.chain).CombinedOutput(); err != nil {
			return fmt.Errorf("%s create nat chain %s: %w: %s", nm.tool, nm.chain, err, bytes.TrimSpace(out))
		}
	}
	multicast := "224.0.0.0/4"
	if nm.tool == "ip6tables" {
		multicast = "ff00::/8"
	}
	for _, r := range [][]string{
		{nm.chain, "-d", nm.subnet, "-j", "ACCEPT"},
		{nm.chain, "!", "-d", multicast, "-j", "MASQUERADE"},
		{"POSTROUTING", "-s", nm.subnet, "-m", "comment", "--comment", "peapod: masquerade the pods of " + nm.bridge, "-j", nm.chain},
	} {
		if exec.CommandContext(ctx, nm.tool, append([]string{"-w", "-t", "nat", "-C"}, r...)...).Run() == nil {
			continue
		}
		if out, err := exec.CommandContext(ctx, nm.tool, append([]string{"-w", "-t", "nat", "-A"}, r...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s add nat rule %v: %w: %s", nm.tool, r, err, bytes.TrimSpace(out))
		}
	}
	nm.ensured = true
	return nil
}
