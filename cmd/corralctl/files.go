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

type filesCall func(corralv1.UnitServiceClient, context.Context, *corralv1.UnitFilesRequest, ...grpc.CallOption) (*corralv1.UnitFilesResponse, error)

// unitFileCmds are enable, disable, mask and unmask.
func unitFileCmds(a *app) []*cobra.Command {
	verbs := []struct {
		verb, short string
		call        filesCall
	}{
		{"enable", "Enable one or more unit files", corralv1.UnitServiceClient.Enable},
		{"disable", "Disable one or more unit files", corralv1.UnitServiceClient.Disable},
		{"mask", "Mask one or more units", corralv1.UnitServiceClient.Mask},
		{"unmask", "Unmask one or more units", corralv1.UnitServiceClient.Unmask},
	}
	var cmds []*cobra.Command
	for _, v := range verbs {
		var now bool
		c := &cobra.Command{
			Use:   v.verb + " UNIT...",
			Short: v.short,
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				uc, err := a.units()
				if err != nil {
					return err
				}
				names := mangleAll(args, ".service")
				resp, err := v.call(uc, cmd.Context(), &corralv1.UnitFilesRequest{Names: names, Now: now})
				if status.Code(err) == codes.NotFound {
					return exitf(exitFailure, "Failed to %s unit: %s", v.verb, sentence(status.Convert(err).Message()))
				}
				if err != nil {
					return a.rpcError(v.verb+" unit "+strings.Join(names, " "), err)
				}
				if a.json() {
					return writeJSONList(a.stdout, resp.GetChanges())
				}
				for _, c := range resp.GetChanges() {
					switch c.GetType() {
					case "symlink":
						fmt.Fprintf(a.stderr, "Created symlink %s → %s.\n", c.GetPath(), c.GetSource())
					case "unlink":
						fmt.Fprintf(a.stderr, "Removed %q.\n", c.GetPath())
					default:
						fmt.Fprintf(a.stderr, "%s %s %s\n", c.GetType(), c.GetPath(), c.GetSource())
					}
				}
				return nil
			},
		}
		c.Flags().BoolVar(&now, "now", false, "also start or stop the units")
		cmds = append(cmds, c)
	}
	return cmds
}

func daemonReloadCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "daemon-reload",
		Short: "Reload all unit files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			uc, err := a.units()
			if err != nil {
				return err
			}
			if _, err := uc.DaemonReload(cmd.Context(), &corralv1.DaemonReloadRequest{}); err != nil {
				return a.rpcError("reload daemon", err)
			}
			return nil
		},
	}
}

func resetFailedCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reset-failed [UNIT...]",
		Short: "Reset the failed state of units (all when none is given)",
		RunE: func(cmd *cobra.Command, args []string) error {
			uc, err := a.units()
			if err != nil {
				return err
			}
			names := mangleAll(args, ".service")
			if _, err := uc.ResetFailed(cmd.Context(), &corralv1.ResetFailedRequest{Names: names}); err != nil {
				if status.Code(err) == codes.NotFound && len(names) > 0 {
					return exitf(exitFailure, "Failed to reset failed state of unit %s: %s", strings.Join(names, " "), sentence(status.Convert(err).Message()))
				}
				return a.rpcError("reset failed state", err)
			}
			return nil
		},
	}
}
