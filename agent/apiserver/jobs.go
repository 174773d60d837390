package apiserver

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/status"

	corralv1 "corral.io/corral/api/corral/v1"
)

// Start implements corralv1.UnitServiceServer.
func (s *Server) Start(ctx context.Context, req *corralv1.JobRequest) (*corralv1.JobResponse, error) {
	return s.enqueue(ctx, req, "start", req.GetJobMode())
}

// Stop implements corralv1.UnitServiceServer.
func (s *Server) Stop(ctx context.Context, req *corralv1.JobRequest) (*corralv1.JobResponse, error) {
	return s.enqueue(ctx, req, "stop", req.GetJobMode())
}

// Restart implements corralv1.UnitServiceServer.
func (s *Server) Restart(ctx context.Context, req *corralv1.JobRequest) (*corralv1.JobResponse, error) {
	return s.enqueue(ctx, req, "restart", req.GetJobMode())
}

// Reload implements corralv1.UnitServiceServer.
func (s *Server) Reload(ctx context.Context, req *corralv1.JobRequest) (*corralv1.JobResponse, error) {
	return s.enqueue(ctx, req, "reload", req.GetJobMode())
}

// TryRestart implements corralv1.UnitServiceServer.
func (s *Server) TryRestart(ctx context.Context, req *corralv1.JobRequest) (*corralv1.JobResponse, error) {
	return s.enqueue(ctx, req, "try-restart", req.GetJobMode())
}

// ReloadOrRestart implements corralv1.UnitServiceServer.
func (s *Server) ReloadOrRestart(ctx context.Context, req *corralv1.JobRequest) (*corralv1.JobResponse, error) {
	return s.enqueue(ctx, req, "reload-or-restart", req.GetJobMode())
}

// Isolate implements corralv1.UnitServiceServer.
func (s *Server) Isolate(ctx context.Context, req *corralv1.JobRequest) (*corralv1.JobResponse, error) {
	if len(req.GetNames()) != 1 {
		return nil, fmt.Errorf("isolate takes exactly one unit, got %d: %w", len(req.GetNames()), ErrInvalid)
	}
	return s.enqueue(ctx, req, "start", "isolate")
}

// enqueue runs one job per unit concurrently, as systemctl enqueues all jobs
// before waiting for any. Per-unit errors go into the outcome (with their
// gRPC code) so that one missing unit does not hide the others' results.
func (s *Server) enqueue(ctx context.Context, req *corralv1.JobRequest, jobType, mode string) (*corralv1.JobResponse, error) {
	names := req.GetNames()
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no unit names: %w", jobType, ErrInvalid)
	}
	if mode == "" {
		mode = "replace"
	}
	switch mode {
	case "replace", "fail", "isolate", "ignore-dependencies", "ignore-requirements", "flush", "replace-irreversibly", "triggering", "restart-dependencies":
	default:
		return nil, fmt.Errorf("job mode %q: %w", mode, ErrInvalid)
	}
	out := make([]*corralv1.JobOutcome, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &corralv1.JobOutcome{Unit: n, JobType: jobType}
			r, err := s.m.Enqueue(ctx, n, jobType, mode, !req.GetNoBlock())
			if err != nil {
				st := status.Convert(toStatus(err))
				o.ErrorCode, o.Error = int32(st.Code()), st.Message()
			} else {
				o.JobId, o.Result = r.ID, r.Result
				if r.Type != "" {
					o.JobType = r.Type
				}
			}
			out[i] = o
		}()
	}
	wg.Wait()
	return &corralv1.JobResponse{Jobs: out}, nil
}

// ListJobs implements corralv1.UnitServiceServer.
func (s *Server) ListJobs(ctx context.Context, _ *corralv1.ListJobsRequest) (*corralv1.ListJobsResponse, error) {
	jobs, err := s.m.ListJobs(ctx)
	if err != nil {
		return nil, err
	}
	resp := &corralv1.ListJobsResponse{}
	for _, j := range jobs {
		resp.Jobs = append(resp.Jobs, &corralv1.Job{Id: j.ID, Unit: j.Unit, Type: j.Type, State: j.State})
	}
	return resp, nil
}

// CancelJob implements corralv1.UnitServiceServer. No ids cancels every job.
func (s *Server) CancelJob(ctx context.Context, req *corralv1.CancelJobRequest) (*corralv1.CancelJobResponse, error) {
	ids := req.GetIds()
	if len(ids) == 0 {
		jobs, err := s.m.ListJobs(ctx)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
	}
	for _, id := range ids {
		if err := s.m.CancelJob(ctx, id); err != nil {
			return nil, err
		}
	}
	return &corralv1.CancelJobResponse{}, nil
}
