#!/usr/bin/env bash
# Builds peapod, peapod-pause, peapod-monitor, peapod-enter and peapod-kubectl into ./bin.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
CGO_ENABLED=0 go build -o bin/ ./cmd/...
