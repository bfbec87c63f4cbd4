package monitor

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/peapod-dev/peapod/internal/oci"
)

func TestAttach(t *testing.T) {
	e := newEnv(t, "sh", "-c", "read x; echo got:$x; echo err >&2; cat; echo done")
	e.p.Stdin, e.p.StdinOnce = true, true
	e.start(t)

	// A session without stdin does not end the container's stdin.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Attach(ctx, AttachSocket(e.p.Bundle), AttachOpts{Stdout: &bytes.Buffer{}}); err != context.Canceled {
		t.Fatalf("output-only Attach: %v", err)
	}

	// The container waits for input, so the session sees all its output;
	// the end of the session's stdin ends the container's (StdinOnce).
	var stdout, stderr bytes.Buffer
	err := Attach(t.Context(), AttachSocket(e.p.Bundle), AttachOpts{
		Stdin: strings.NewReader("hello\nrest"), Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if stdout.String() != "got:hello\nrestdone\n" || stderr.String() != "err\n" {
		t.Fatalf("attached stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	if exit := e.waitExit(t); exit.ExitCode != 0 {
		t.Fatalf("exit %+v", exit)
	}
	logOut, logErr := readLogs(t, e.p.LogPath)
	if logOut != stdout.String() || logErr != stderr.String() {
		t.Fatalf("log stdout %q, stderr %q", logOut, logErr)
	}
	if _, err := os.Stat(AttachSocket(e.p.Bundle)); !os.IsNotExist(err) {
		t.Fatalf("attach socket left after the exit: %v", err)
	}
	if err := Attach(t.Context(), AttachSocket(e.p.Bundle), AttachOpts{}); err == nil {
		t.Fatal("Attach to an exited container succeeded")
	}
}

func TestAttachTerminal(t *testing.T) {
	e := newEnv(t, "sh", "-c", "read x; stty size; echo got:$x; exit 2")
	e.setTerminal(t)
	e.p.Stdin = true
	e.start(t)

	resize := make(chan oci.TerminalSize, 1)
	resize <- oci.TerminalSize{Width: 77, Height: 33}
	var stdout bytes.Buffer
	err := Attach(t.Context(), AttachSocket(e.p.Bundle), AttachOpts{
		Stdin: strings.NewReader("hi\n"), Stdout: &stdout, Resize: resize,
	})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	for _, want := range []string{"33 77\r\n", "got:hi\r\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("terminal output %q lacks %q", stdout.String(), want)
		}
	}
	if exit := e.waitExit(t); exit.ExitCode != 2 {
		t.Fatalf("exit %+v", exit)
	}
	logOut, logErr := readLogs(t, e.p.LogPath)
	if !strings.Contains(logOut, "got:hi\r\n") || logErr != "" {
		t.Fatalf("log stdout %q, stderr %q", logOut, logErr)
	}
}

func TestAttachCancel(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	e.start(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Attach(ctx, AttachSocket(e.p.Bundle), AttachOpts{Stdout: &bytes.Buffer{}}); err != context.Canceled {
		t.Fatalf("Attach with a cancelled context: %v", err)
	}
}
