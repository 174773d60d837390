package apiserver

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors the Manager wraps (with %w) so that the server can pick a
// gRPC code without the manager knowing about gRPC.
var (
	// ErrNotFound: no such unit, unit file or job. → NotFound
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a malformed name, unknown job type or mode. → InvalidArgument
	ErrInvalid = errors.New("invalid argument")
	// ErrRefused: the request is valid but the unit's state or configuration
	// forbids it (masked, RefuseManualStart=, not isolatable, conflicting
	// transaction). → FailedPrecondition
	ErrRefused = errors.New("refused")
	// ErrPermission: the caller may not do this. → PermissionDenied
	ErrPermission = errors.New("permission denied")
	// ErrUnsupported: a feature Corral does not have (yet). → Unimplemented
	ErrUnsupported = errors.New("not supported")
	// ErrUnavailable: the manager cannot take requests now (shutting down,
	// still starting). → Unavailable
	ErrUnavailable = errors.New("unavailable")
)

// toStatus is the one place where domain errors become gRPC status errors.
// Errors that already carry a status (from handlers) are kept.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}

func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, ErrRefused):
		return codes.FailedPrecondition
	case errors.Is(err, ErrPermission):
		return codes.PermissionDenied
	case errors.Is(err, ErrUnsupported):
		return codes.Unimplemented
	case errors.Is(err, ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Internal
}
