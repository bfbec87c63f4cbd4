#!/usr/bin/env bash
# Sets up the machine and runs every test, as root. CI runs this (CI=true), where a
# missing prerequisite fails the run instead of skipping a test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH=$PATH:/usr/local/go/bin

unformatted=$(gofmt -l $(git ls-files '*.go'))
[ -z "$unformatted" ] || { echo "gofmt needed: $unformatted" >&2; exit 1; }
go vet ./...
bash scripts/build.sh

# Packages run one at a time: several start whole daemons, runc containers and
# CNI networks, and two cores are all CI has.
go test -p 1 -count=1 -timeout 45m "$@" ./...
