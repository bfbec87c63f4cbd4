#!/usr/bin/env bash
# Sets up the machine, builds peapod, starts the daemon with its state in
# /var/lib/peapod (PEAPOD_ROOT to change) and runs the two-container demo pod.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export PATH=$PATH:/usr/local/go/bin

root=${PEAPOD_ROOT:-/var/lib/peapod}
kc=$root/kubeconfig
k() { kubectl --kubeconfig "$kc" "$@"; }

if ! k get --raw /readyz >/dev/null 2>&1; then
	mkdir -p "$root"
	rm -f "$kc"
	nohup bin/peapod serve --root "$root" >"$root/peapod.log" 2>&1 &
	echo "peapod serve started (pid $!), log in $root/peapod.log"
	for _ in $(seq 300); do
		[ -f "$kc" ] && break
		kill -0 $! 2>/dev/null || { cat "$root/peapod.log" >&2; exit 1; }
		sleep 0.1
	done
	[ -f "$kc" ] || { echo "peapod did not become ready; see $root/peapod.log" >&2; exit 1; }
fi

tar=$(mktemp /tmp/busybox-rootfs.XXXXXX.tar)
bash scripts/busybox-rootfs.sh "$tar"
bin/peapod --root "$root" image import "$tar" busybox
rm -f "$tar"
bin/peapod --root "$root" image ls

k delete pod demo --ignore-not-found --wait=true >/dev/null
k create -f examples/two-containers.yaml
for _ in $(seq 120); do
	[ "$(k get pod demo -o jsonpath='{.status.phase}')" = Running ] && [ "$(k get pod demo -o jsonpath='{.status.containerStatuses[*].ready}')" = "true true" ] && break
	sleep 0.5
done
k get pods -o wide
sleep 3
echo "--- kubectl logs demo -c client"
k logs demo -c client
cat <<MSG

The pod keeps running. Try:
  export KUBECONFIG=$kc
  kubectl get pod demo -o yaml
  kubectl logs demo -c web
  kubectl delete pod demo
Stop the daemon with: kill \$(pgrep -f 'peapod serve --root $root')
MSG
