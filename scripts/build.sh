#!/usr/bin/env bash
# Builds peapod, peapod-pause, peapod-monitor, peapod-kubectl and peapod-enter
# into ./bin, or into the directory given.
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "$0")/../bin}")
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
# Static pure-Go binaries: they run on any machine and in containers.
CGO_ENABLED=0 go build -o "$out/" ./cmd/peapod ./cmd/peapod-pause ./cmd/peapod-monitor ./cmd/peapod-kubectl
# peapod-enter's work is C run before the Go runtime starts (enter.c); it
# links glibc statically.
CGO_ENABLED=1 go build -o "$out/" ./cmd/peapod-enter
