package podmanager

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podLogsDirectory is the pod's log directory: LogRoot/<ns>_<name>_<uid>
// (BuildPodLogsDirectory).
func (m *Manager) podLogsDirectory(pod *corev1.Pod) string {
	return filepath.Join(m.cfg.LogRoot, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// generatePodSandboxConfig builds the PodSandboxConfig as the kubelet does.
func (m *Manager) generatePodSandboxConfig(pod *corev1.Pod, attempt uint32, cgroupParent string) (*runtimeapi.PodSandboxConfig, error) {
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      pod.Name,
			Namespace: pod.Namespace,
			Uid:       string(pod.UID),
			Attempt:   attempt,
		},
		Labels:       newPodLabels(pod),
		Annotations:  newPodAnnotations(pod),
		LogDirectory: m.podLogsDirectory(pod),
	}
	dns, err := m.dnsConfig(pod)
	if err != nil {
		return nil, err
	}
	cfg.DnsConfig = dns
	if !pod.Spec.HostNetwork {
		cfg.Hostname = podHostname(pod)
	}
	for i := range pod.Spec.Containers {
		for _, p := range pod.Spec.Containers[i].Ports {
			if p.HostPort <= 0 {
				continue
			}
			cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{
				Protocol:      toRuntimeProtocol(p.Protocol),
				ContainerPort: p.ContainerPort,
				HostPort:      p.HostPort,
				HostIp:        p.HostIP,
			})
		}
	}
	cfg.Linux = m.generatePodSandboxLinuxConfig(pod, cgroupParent)
	return cfg, nil
}

// podHostname is GeneratePodHostNameAndDomain: spec.hostname or the pod name,
// truncated to 63 characters.
func podHostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

func toRuntimeProtocol(p corev1.Protocol) runtimeapi.Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case corev1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

// generatePodSandboxLinuxConfig: cgroup parent, namespaces, sysctls and the pod's
// security context.
func (m *Manager) generatePodSandboxLinuxConfig(pod *corev1.Pod, cgroupParent string) *runtimeapi.LinuxPodSandboxConfig {
	lc := &runtimeapi.LinuxPodSandboxConfig{
		CgroupParent: cgroupParent,
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			Privileged:       hasPrivilegedContainer(pod),
			NamespaceOptions: namespacesForPod(pod),
		},
		Resources: sandboxResources(pod),
	}
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return lc
	}
	if len(sc.Sysctls) > 0 {
		lc.Sysctls = make(map[string]string, len(sc.Sysctls))
		for _, s := range sc.Sysctls {
			lc.Sysctls[s.Name] = s.Value
		}
	}
	if sc.RunAsUser != nil {
		lc.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	}
	if sc.RunAsGroup != nil {
		lc.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
	}
	if sc.FSGroup != nil {
		lc.SecurityContext.SupplementalGroups = append(lc.SecurityContext.SupplementalGroups, *sc.FSGroup)
	}
	lc.SecurityContext.SupplementalGroups = append(lc.SecurityContext.SupplementalGroups, sc.SupplementalGroups...)
	if sc.SELinuxOptions != nil {
		lc.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{
			User: sc.SELinuxOptions.User, Role: sc.SELinuxOptions.Role,
			Type: sc.SELinuxOptions.Type, Level: sc.SELinuxOptions.Level,
		}
	}
	lc.SecurityContext.Seccomp = seccompProfile(sc.SeccompProfile, nil)
	return lc
}

func hasPrivilegedContainer(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if sc := cs[i].SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
				return true
			}
		}
	}
	return false
}

// namespacesForPod: network NODE for hostNetwork else POD; pid NODE for hostPID,
// POD for shareProcessNamespace, else CONTAINER; ipc NODE for hostIPC else POD.
func namespacesForPod(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	o := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Ipc:     runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
	}
	if pod.Spec.HostNetwork {
		o.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		o.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		o.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		o.Pid = runtimeapi.NamespaceMode_POD
	}
	return o
}

// dnsConfig is the kubelet's dns.Configurer.GetPodDNS without a cluster DNS:
// ClusterFirst and ClusterFirstWithHostNet fall back to Default (the host's
// resolv.conf), None takes only spec.dnsConfig; spec.dnsConfig is merged in.
func (m *Manager) dnsConfig(pod *corev1.Pod) (*runtimeapi.DNSConfig, error) {
	cfg := &runtimeapi.DNSConfig{}
	if pod.Spec.DNSPolicy != corev1.DNSNone {
		ns, search, opts, err := parseResolvConf(m.cfg.ResolvConf)
		if err != nil {
			return nil, err
		}
		cfg.Servers, cfg.Searches, cfg.Options = ns, search, opts
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		cfg.Servers = appendUnique(cfg.Servers, dc.Nameservers...)
		cfg.Searches = appendUnique(cfg.Searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = mergeOption(cfg.Options, opt)
		}
	}
	return cfg, nil
}

func appendUnique(list []string, add ...string) []string {
	seen := map[string]bool{}
	for _, s := range list {
		seen[s] = true
	}
	for _, s := range add {
		if !seen[s] {
			list = append(list, s)
			seen[s] = true
		}
	}
	return list
}

// mergeOption replaces an option of the same name ("ndots:5" replaces "ndots:1").
func mergeOption(opts []string, opt string) []string {
	name := strings.SplitN(opt, ":", 2)[0]
	for i, o := range opts {
		if strings.SplitN(o, ":", 2)[0] == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

// parseResolvConf reads nameservers, search domains and options; a missing
// file means no DNS configuration.
func parseResolvConf(path string) (servers, searches, options []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("read host DNS configuration: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) > 1 {
				servers = append(servers, fields[1])
			}
		case "search", "domain":
			searches = fields[1:]
		case "options":
			for _, o := range fields[1:] {
				options = mergeOption(options, o)
			}
		}
	}
	return servers, searches, options, sc.Err()
}
