package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	corralv1 "corral.io/corral/api/corral/v1"
)

func versionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the client and agent versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := "devel"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				client = bi.Main.Version
			}
			sc, err := a.system()
			if err != nil {
				return err
			}
			resp, err := sc.Version(cmd.Context(), &corralv1.VersionRequest{})
			if err != nil {
				return a.rpcError("get agent version", err)
			}
			if a.json() {
				v, err := jsonValue(resp)
				if err != nil {
					return err
				}
				return writeJSON(a.stdout, map[string]any{"client": client, "agent": v})
			}
			fmt.Fprintf(a.stdout, "corralctl %s\ncorral-agent %s (%s)\n", client, resp.GetVersion(), resp.GetGoVersion())
			return nil
		},
	}
}
