package apiserver

import (
	"context"
	"strings"
	"testing"
)

func TestProfiling(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	index, err := ts.client.RESTClient().Get().AbsPath("/debug/pprof/").DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET /debug/pprof/: %v", err)
	}
	if !strings.Contains(string(index), "goroutine") {
		t.Fatalf("index lists no goroutine profile:\n%s", index)
	}
	heap, err := ts.client.RESTClient().Get().AbsPath("/debug/pprof/heap").DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET /debug/pprof/heap: %v", err)
	}
	if len(heap) == 0 {
		t.Fatal("empty heap profile")
	}
}
