// Package version is peapod's version, reported by the CLI, the API server's
// /version and the CRI Version call.
package version

// Version is overridden at build time with -ldflags "-X ...version.Version=v1.2.3".
var Version = "v0.1.0-dev"

// RuntimeName is how the CRI runtime names itself (container IDs are peapod://<id>).
const RuntimeName = "peapod"
