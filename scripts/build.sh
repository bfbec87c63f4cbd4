#!/usr/bin/env bash
# Builds peapod, peapod-pause and peapod-monitor into ./bin.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
CGO_ENABLED=0 go build -o bin/ ./cmd/...
