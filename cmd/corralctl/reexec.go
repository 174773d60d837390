package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	corralv1 "corral.io/corral/api/corral/v1"
)

// reexecWait bounds the wait for the new image to answer: it loads every
// unit file again before it serves (about half a second at 10,000 units).
const reexecWait = 2 * time.Minute

func reexecCmds(a *app) []*cobra.Command {
	return []*cobra.Command{
		{
			Use:   "daemon-reexec",
			Short: "Re-execute the agent, keeping every unit, container and socket",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return a.reexec(cmd.Context(), "")
			},
		},
		{
			Use:   "upgrade PATH",
			Short: "Replace the running agent by the binary PATH (root-owned), keeping every unit, container and socket",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				p, err := filepath.Abs(args[0])
				if err != nil {
					return exitf(exitFailure, "Bad path %s: %v", args[0], err)
				}
				return a.reexec(cmd.Context(), p)
			},
		},
	}
}

// reexec asks for the re-exec, then waits until the new image answers on a
// fresh connection. The agent replies only once it stopped accepting, so
// that connection can only reach the new image.
func (a *app) reexec(ctx context.Context, path string) error {
	sc, err := a.system()
	if err != nil {
		return err
	}
	what := "re-execute daemon"
	if path != "" {
		what = "upgrade daemon to " + path
	}
	if _, err := sc.Reexec(ctx, &corralv1.ReexecRequest{Path: path}); err != nil {
		return a.rpcError(what, err)
	}
	c, err := grpc.NewClient("unix://"+a.socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return exitf(exitFailure, "Failed to connect to corral at %s: %v", a.socket(), err)
	}
	defer c.Close()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reexecWait)
	defer cancel()
	if _, err := corralv1.NewSystemServiceClient(c).Health(wctx, &corralv1.HealthRequest{}, grpc.WaitForReady(true)); err != nil {
		return a.rpcError("wait for the re-executed daemon", err)
	}
	return nil
}
