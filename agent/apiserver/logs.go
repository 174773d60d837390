package apiserver

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	corralv1 "corral.io/corral/api/corral/v1"
)

// Logs implements corralv1.UnitServiceServer.
func (s *Server) Logs(req *corralv1.LogsRequest, stream corralv1.UnitService_LogsServer) error {
	var since time.Time
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	n := int(req.GetN())
	if n < 0 {
		n = 0
	}
	return s.m.Logs(stream.Context(), req.GetUnit(), n, since, req.GetFollow(), func(e LogEntry) error {
		return stream.Send(&corralv1.LogEntry{
			Time: timestamppb.New(e.Time), Unit: e.Unit, Stream: e.Stream, Message: e.Msg,
		})
	})
}
