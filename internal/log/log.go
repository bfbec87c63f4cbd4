// Package log carries a *slog.Logger in a context so that every layer logs with
// the attributes (pod, sandbox, container) its caller added.
package log

import (
	"context"
	"log/slog"
)

type key struct{}

// WithLogger returns a context that carries l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, key{}, l)
}

// FromContext returns the context's logger, or slog.Default when it has none.
func FromContext(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(key{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// With returns a context whose logger has the given attributes added.
func With(ctx context.Context, args ...any) context.Context {
	return WithLogger(ctx, FromContext(ctx).With(args...))
}
