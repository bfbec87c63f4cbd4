#!/usr/bin/env bash
# Installs everything peapod needs on Debian 12, as root. Safe to run again.
set -euo pipefail

die() { echo "setup: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (peapod manages namespaces, mounts and cgroups)"

pkgs=(runc containernetworking-plugins busybox-static iproute2 iptables tar docker-registry skopeo gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	# The tests run their own docker-registry on 127.0.0.1; the package's
	# service would serve an open registry on :5000.
	if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		systemctl disable --now docker-registry >/dev/null 2>&1 || true
	fi
fi

export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || die "Go is missing: install Go $(sed -n 's/^go //p' "$(dirname "$0")/../go.mod") or newer into /usr/local/go"
command -v kubectl >/dev/null || die "kubectl is missing: install kubectl v1.32 (the tests drive peapod with the real kubectl)"
[ -x /usr/lib/cni/bridge ] || die "CNI plugins missing in /usr/lib/cni: apt-get install containernetworking-plugins"
grep -qw overlay /proc/filesystems || modprobe overlay || die "the kernel has no overlayfs"
