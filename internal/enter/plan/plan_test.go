package plan

import (
	"errors"
	"testing"
)

// AppendRequest refuses what peapod-enter would not read.
func TestAppendRequestRefusesOversizedPlans(t *testing.T) {
	p := &Plan{Args: []string{"true"}, SeccompFilter: make([]byte, MaxPlan)}
	if _, err := AppendRequest(nil, Request{}, p); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a %d-byte filter: %v, want ErrTooLarge", MaxPlan, err)
	}
	b, err := AppendRequest(nil, Request{ID: 7}, &Plan{Args: []string{"true"}})
	if err != nil || len(b) <= RequestSize {
		t.Errorf("a small plan: %d bytes, %v", len(b), err)
	}
}
