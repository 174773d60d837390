package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"corral.io/corral/runtimes"
)

// codeOf is the one mapping from domain errors to gRPC codes. An error that
// already carries a status (a remote CRI backend's answer) keeps its code.
func codeOf(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, runtimes.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, runtimes.ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, runtimes.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, runtimes.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, runtimes.ErrUnsupported):
		return codes.Unimplemented
	case errors.Is(err, runtimes.ErrPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Internal
}

// toStatus turns err into a gRPC status error with the full message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && codeOf(err) == s.Code() {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}

// logLevel keeps kubelet's once-a-second polling out of the info log while
// every failure caused by Corral stays visible.
func logLevel(c codes.Code) slog.Level {
	switch c {
	case codes.OK, codes.Canceled:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.Unavailable, codes.DataLoss:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// recovered turns a panic in a handler into an Internal error: a bug in one
// RPC must not take the node agent down.
func (s *Server) recovered(method string, err *error) {
	if r := recover(); r != nil {
		s.log.Error("cri: panic", "method", method, "panic", r, "stack", string(debug.Stack()))
		*err = fmt.Errorf("cri %s: panic: %v", method, r)
	}
}

func (s *Server) unaryEdge(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	func() {
		defer s.recovered(info.FullMethod, &err)
		resp, err = h(ctx, req)
	}()
	c := codeOf(err)
	s.log.Log(ctx, logLevel(c), "cri call", "method", info.FullMethod, "code", c.String(),
		"duration", time.Since(start), "err", err)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

func (s *Server) streamEdge(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	start := time.Now()
	func() {
		defer s.recovered(info.FullMethod, &err)
		err = h(srv, ss)
	}()
	c := codeOf(err)
	s.log.Log(ss.Context(), logLevel(c), "cri stream", "method", info.FullMethod, "code", c.String(),
		"duration", time.Since(start), "err", err)
	return toStatus(err)
}
