package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corralv1 "corral.io/corral/api/corral/v1"
)

type jobCall func(corralv1.UnitServiceClient, context.Context, *corralv1.JobRequest, ...grpc.CallOption) (*corralv1.JobResponse, error)

// jobCmds are the verbs that enqueue one job per unit.
func jobCmds(a *app) []*cobra.Command {
	verbs := []struct {
		verb  string
		short string
		call  jobCall
	}{
		{"start", "Start (activate) one or more units", corralv1.UnitServiceClient.Start},
		{"stop", "Stop (deactivate) one or more units", corralv1.UnitServiceClient.Stop},
		{"restart", "Start or restart one or more units", corralv1.UnitServiceClient.Restart},
		{"reload", "Reload one or more units", corralv1.UnitServiceClient.Reload},
		{"try-restart", "Restart one or more units if active", corralv1.UnitServiceClient.TryRestart},
		{"reload-or-restart", "Reload one or more units if possible, otherwise start or restart", corralv1.UnitServiceClient.ReloadOrRestart},
	}
	var cmds []*cobra.Command
	for _, v := range verbs {
		var noBlock bool
		var mode string
		c := &cobra.Command{
			Use:   v.verb + " UNIT...",
			Short: v.short,
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				req := &corralv1.JobRequest{Names: mangleAll(args, ".service"), JobMode: mode, NoBlock: noBlock}
				return a.runJobs(cmd.Context(), v.verb, v.call, req)
			},
		}
		c.Flags().BoolVar(&noBlock, "no-block", false, "do not wait for the jobs to finish")
		c.Flags().StringVar(&mode, "job-mode", "replace", "job mode: replace, fail, isolate, ignore-dependencies, flush, ...")
		cmds = append(cmds, c)
	}
	return cmds
}

func isolateCmd(a *app) *cobra.Command {
	var noBlock bool
	c := &cobra.Command{
		Use:   "isolate UNIT",
		Short: "Start one unit and stop all others",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &corralv1.JobRequest{Names: []string{mangle(args[0], ".target")}, JobMode: "isolate", NoBlock: noBlock}
			return a.runJobs(cmd.Context(), "isolate", corralv1.UnitServiceClient.Isolate, req)
		},
	}
	c.Flags().BoolVar(&noBlock, "no-block", false, "do not wait for the job to finish")
	return c
}

// runJobs sends one job request and reports each unit like systemctl: an
// error per unit on stderr, and the exit code of the first failure.
func (a *app) runJobs(ctx context.Context, verb string, call jobCall, req *corralv1.JobRequest) error {
	uc, err := a.units()
	if err != nil {
		return err
	}
	resp, err := call(uc, ctx, req)
	if err != nil {
		return a.rpcError(verb+" "+strings.Join(req.GetNames(), " "), err)
	}
	if a.json() {
		if err := writeJSONList(a.stdout, resp.GetJobs()); err != nil {
			return err
		}
	}
	var first *exitError
	for _, j := range resp.GetJobs() {
		e := jobError(verb, j)
		if e == nil {
			continue
		}
		fmt.Fprintln(a.stderr, e.msg)
		if first == nil {
			first = e
		}
	}
	if first != nil {
		return &exitError{code: first.code}
	}
	return nil
}

// jobError is systemctl's message for one unit's failed enqueue or job.
func jobError(verb string, j *corralv1.JobOutcome) *exitError {
	u := j.GetUnit()
	if c := codes.Code(j.GetErrorCode()); c != codes.OK {
		switch c {
		case codes.NotFound:
			if verb == "stop" || verb == "reload" || verb == "try-restart" {
				return &exitError{exitNotInstalled, fmt.Sprintf("Failed to %s %s: Unit %s not loaded.", verb, u, u)}
			}
			return &exitError{exitNotInstalled, fmt.Sprintf("Failed to %s %s: Unit %s not found.", verb, u, u)}
		case codes.PermissionDenied:
			return &exitError{exitNoPermission, fmt.Sprintf("Failed to %s %s: Access denied.", verb, u)}
		}
		return &exitError{exitFailure, fmt.Sprintf("Failed to %s %s: %s", verb, u, sentence(j.GetError()))}
	}
	hint := fmt.Sprintf("See \"corralctl status %s\" and \"corralctl logs -u %s\" for details.", u, u)
	switch j.GetResult() {
	case "", "done", "skipped":
		return nil
	case "canceled":
		return &exitError{exitFailure, fmt.Sprintf("Job for %s canceled.", u)}
	case "timeout":
		return &exitError{exitFailure, fmt.Sprintf("Job for %s timed out.\n%s", u, hint)}
	case "dependency":
		return &exitError{exitFailure, fmt.Sprintf("A dependency job for %s failed. See \"corralctl logs\" for details.", u)}
	case "failed":
		return &exitError{exitFailure, fmt.Sprintf("Job for %s failed.\n%s", u, hint)}
	}
	return &exitError{exitFailure, fmt.Sprintf("Job for %s failed with result '%s'.\n%s", u, j.GetResult(), hint)}
}

func cancelCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel [JOB...]",
		Short: "Cancel jobs (all when none is given)",
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &corralv1.CancelJobRequest{}
			for _, s := range args {
				var id uint64
				if _, err := fmt.Sscan(s, &id); err != nil {
					return exitf(exitFailure, "Failed to parse job id %q.", s)
				}
				req.Ids = append(req.Ids, id)
			}
			uc, err := a.units()
			if err != nil {
				return err
			}
			if _, err := uc.CancelJob(cmd.Context(), req); err != nil {
				if status.Code(err) == codes.NotFound {
					return exitf(exitFailure, "Failed to cancel job: %s", sentence(status.Convert(err).Message()))
				}
				return a.rpcError("cancel job", err)
			}
			return nil
		},
	}
}
