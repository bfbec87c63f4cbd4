package criruntime

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain errors. The RPC methods turn them into gRPC status codes with
// toStatus; nothing below the RPC edge knows about gRPC.
var (
	// ErrNotFound: no sandbox or container has that ID.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the name is reserved by another sandbox or container.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument: the request is malformed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrFailedPrecondition: the object is not in a state that allows the call.
	ErrFailedPrecondition = errors.New("failed precondition")
)

// StateError says an operation is not allowed in the object's current state.
type StateError struct {
	Op    string // what was attempted
	ID    string
	State string // the state it is in
}

func (e *StateError) Error() string {
	return fmt.Sprintf("cannot %s %s: it is %s", e.Op, e.ID, e.State)
}

func (e *StateError) Unwrap() error { return ErrFailedPrecondition }

// toStatus maps a domain error to a gRPC status error at the RPC edge.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, ErrFailedPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
