// Package dirs names every place where peapod keeps state, so that one --root
// flag moves all of it (tests run whole daemons in temporary roots).
package dirs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
)

// DefaultRoot is where peapod keeps its state unless told otherwise.
const DefaultRoot = "/var/lib/peapod"

// Dirs are the persistent root and the run directory derived from it.
type Dirs struct {
	Root string // persistent state
	Run  string // runtime state on tmpfs: runc state, netns pins, sockets
}

// New derives the run directory from root: /run/peapod for the default root,
// /run/peapod-<hash> for any other, so two daemons never share runtime state.
func New(root string) (Dirs, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return Dirs{}, fmt.Errorf("resolve root %q: %w", root, err)
	}
	run := "/run/peapod"
	if abs != DefaultRoot {
		sum := sha256.Sum256([]byte(abs))
		run = "/run/peapod-" + hex.EncodeToString(sum[:])[:12]
	}
	return Dirs{Root: abs, Run: run}, nil
}

func (d Dirs) Images() string       { return filepath.Join(d.Root, "images") }
func (d Dirs) Snapshots() string    { return filepath.Join(d.Root, "snapshots") }
func (d Dirs) Pods() string         { return filepath.Join(d.Root, "pods") }
func (d Dirs) Logs() string         { return filepath.Join(d.Root, "logs") }
func (d Dirs) CNIConf() string      { return filepath.Join(d.Root, "cni", "net.d") }
func (d Dirs) CNIIPAM() string      { return filepath.Join(d.Root, "cni", "ipam") }
func (d Dirs) CNICache() string     { return filepath.Join(d.Root, "cni", "cache") }
func (d Dirs) RegistryConf() string { return filepath.Join(d.Root, "certs.d") }
func (d Dirs) Kubeconfig() string   { return filepath.Join(d.Root, "kubeconfig") }
func (d Dirs) RuncRoot() string     { return filepath.Join(d.Run, "runc") }
func (d Dirs) Netns() string        { return filepath.Join(d.Run, "netns") }
func (d Dirs) CRISocket() string    { return filepath.Join(d.Run, "cri.sock") }

// AuthFile holds registry credentials in docker's config.json format.
func (d Dirs) AuthFile() string { return filepath.Join(d.Root, "auth.json") }
