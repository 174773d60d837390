package remote

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"corral.io/corral/runtimes"
)

// sentinels maps the remote's gRPC codes back to the runtimes sentinels, so
// that the CRI edge gives kubelet the same code the remote gave Corral.
var sentinels = map[codes.Code]error{
	codes.NotFound:           runtimes.ErrNotFound,
	codes.InvalidArgument:    runtimes.ErrInvalid,
	codes.AlreadyExists:      runtimes.ErrExists,
	codes.Unavailable:        runtimes.ErrUnavailable,
	codes.Unimplemented:      runtimes.ErrUnsupported,
	codes.FailedPrecondition: runtimes.ErrPrecondition,
	codes.DeadlineExceeded:   context.DeadlineExceeded,
	codes.Canceled:           context.Canceled,
}

// wrap names the call and object and keeps the remote's message. Codes
// without a sentinel (Internal, Unknown, ...) keep their status, which the
// CRI edge passes through.
func (b *Backend) wrap(op, id string, err error) error {
	if err == nil {
		return nil
	}
	what := b.kind + " " + op
	if id != "" {
		what += " " + id
	}
	s, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	if sent, ok := sentinels[s.Code()]; ok {
		return fmt.Errorf("%s: %s: %w", what, s.Message(), sent)
	}
	return status.Error(s.Code(), what+": "+s.Message())
}
