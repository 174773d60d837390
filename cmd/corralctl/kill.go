package main

import (
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corralv1 "corral.io/corral/api/corral/v1"
)

// signalNames maps numbers to systemd's short names (used for parsing -s and
// for "status=9/KILL").
var signalNames = map[int]string{
	1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 7: "BUS", 8: "FPE", 9: "KILL",
	10: "USR1", 11: "SEGV", 12: "USR2", 13: "PIPE", 14: "ALRM", 15: "TERM", 16: "STKFLT",
	17: "CHLD", 18: "CONT", 19: "STOP", 20: "TSTP", 21: "TTIN", 22: "TTOU", 23: "URG",
	24: "XCPU", 25: "XFSZ", 26: "VTALRM", 27: "PROF", 28: "WINCH", 29: "IO", 30: "PWR", 31: "SYS",
}

// parseSignal accepts "TERM", "SIGTERM", "sigterm" or "15".
func parseSignal(s string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 64 {
		return syscall.Signal(n), true
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	for n, v := range signalNames {
		if v == name {
			return syscall.Signal(n), true
		}
	}
	return 0, false
}

func killCmd(a *app) *cobra.Command {
	var sig, whom string
	c := &cobra.Command{
		Use:   "kill UNIT...",
		Short: "Send a signal to the processes of units",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, ok := parseSignal(sig)
			if !ok {
				return exitf(exitFailure, "Failed to parse signal string %s.", sig)
			}
			switch whom {
			case "all", "main", "control":
			default:
				return exitf(exitFailure, "Unknown who specified: %s", whom)
			}
			uc, err := a.units()
			if err != nil {
				return err
			}
			for _, n := range mangleAll(args, ".service") {
				_, err := uc.Kill(cmd.Context(), &corralv1.KillRequest{Names: []string{n}, Whom: whom, Signal: int32(s)})
				if status.Code(err) == codes.NotFound {
					return exitf(exitFailure, "Failed to kill unit %s: Unit %s not loaded.", n, n)
				}
				if err != nil {
					return a.rpcError("kill unit "+n, err)
				}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&sig, "signal", "s", "SIGTERM", "signal to send")
	c.Flags().StringVar(&whom, "kill-whom", "all", "which processes: all, main or control")
	return c
}
