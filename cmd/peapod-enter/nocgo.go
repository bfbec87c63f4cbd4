//go:build !cgo

package main

// peapod-enter's work is C code run before the Go runtime starts: build it
// with cgo (CGO_ENABLED=1 and gcc with libc6-dev).
var _ = peapodEnterNeedsCgo
