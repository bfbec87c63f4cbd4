// Command peapod-enter runs one process inside a running container for the
// daemon's lean exec path (ExecSync, exec probes). See internal/enter.
package main

import "github.com/peapod-dev/peapod/internal/enter/child"

func main() { child.Main() }
