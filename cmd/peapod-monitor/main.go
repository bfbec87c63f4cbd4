// Command peapod-monitor holds one container's stdio and exit code for the
// peapod daemon; see internal/monitor. It is started by the daemon only.
package main

import (
	"os"

	"github.com/peapod-dev/peapod/internal/monitor"
)

func main() {
	os.Exit(monitor.Main(os.Args[1:]))
}
