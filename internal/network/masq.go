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
