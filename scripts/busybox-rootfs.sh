#!/usr/bin/env bash
# Writes a root filesystem tarball made from Debian's busybox-static to $1, for
# `peapod image import` (no registry is needed to run a first pod).
set -euo pipefail
out=${1:?usage: busybox-rootfs.sh OUT.tar}
bb=/bin/busybox
file -L "$bb" 2>/dev/null | grep -q "statically linked" || [ -x "$bb" ] || { echo "busybox-static is missing: apt-get install busybox-static" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
r=$tmp/rootfs
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,root,home,var,tmp}
chmod 1777 "$r/tmp"
cp "$bb" "$r/bin/busybox"
for a in $("$bb" --list-full); do
	[ "$a" = bin/busybox ] && continue
	mkdir -p "$r/$(dirname "$a")"
	ln -sf /bin/busybox "$r/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$out" .
