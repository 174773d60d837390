package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	corralv1 "corral.io/corral/api/corral/v1"
)

// Exit codes, as systemctl uses them (LSB init-script codes).
const (
	exitOK           = 0
	exitFailure      = 1
	exitNotRunning   = 3 // status/is-active: unit not active
	exitNoPermission = 4 // also status: no such unit
	exitNotInstalled = 5 // start/stop: no such unit
)

// exitError carries an exit code through cobra. msg (if any) is printed to
// stderr, one line per unit already formatted systemctl style.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// app is the state shared by all verbs: global flags, output streams and
// the lazily dialled connection.
type app struct {
	root   string
	output string
	stdout io.Writer
	stderr io.Writer

	conn *grpc.ClientConn
}

func (a *app) socket() string {
	return filepath.Join(a.root, "run", "corral", "api.sock")
}

func (a *app) dial() (*grpc.ClientConn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	c, err := grpc.NewClient("unix://"+a.socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, exitf(exitFailure, "Failed to connect to corral at %s: %v", a.socket(), err)
	}
	a.conn = c
	return c, nil
}

func (a *app) units() (corralv1.UnitServiceClient, error) {
	c, err := a.dial()
	if err != nil {
		return nil, err
	}
	return corralv1.NewUnitServiceClient(c), nil
}

func (a *app) system() (corralv1.SystemServiceClient, error) {
	c, err := a.dial()
	if err != nil {
		return nil, err
	}
	return corralv1.NewSystemServiceClient(c), nil
}

func (a *app) json() bool { return a.output == "json" }

// rpcError turns a failed call into systemctl's wording and exit code.
// what is the action, e.g. "start foo.service"; it may be empty.
func (a *app) rpcError(what string, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	st := status.Convert(err)
	prefix := ""
	if what != "" {
		prefix = "Failed to " + what + ": "
	}
	switch st.Code() {
	case codes.Unavailable:
		return exitf(exitFailure, "Failed to connect to corral at %s: %s", a.socket(), st.Message())
	case codes.PermissionDenied:
		return exitf(exitNoPermission, "%sAccess denied (%s)", prefix, st.Message())
	}
	return exitf(exitFailure, "%s%s", prefix, sentence(st.Message()))
}

// sentence capitalizes msg and ends it with a period, as systemctl prints
// D-Bus errors.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// run executes one corralctl invocation and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	defer func() {
		if a.conn != nil {
			a.conn.Close()
		}
	}()
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, err)
	return exitFailure
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "corralctl",
		Short:         "Control the Corral service manager",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.output != "text" && a.output != "json" {
				return exitf(exitFailure, "Unknown output %q (want text or json).", a.output)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.root, "root", "/", "root directory of the Corral instance")
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	pf.Bool("no-pager", false, "accepted for systemctl compatibility; corralctl never pages")
	pf.BoolP("full", "l", false, "accepted for systemctl compatibility; output is never ellipsized")

	root.AddCommand(jobCmds(a)...)
	root.AddCommand(
		isolateCmd(a), statusCmd(a), showCmd(a), catCmd(a), listUnitsCmd(a), listJobsCmd(a),
		cancelCmd(a), isActiveCmd(a), isFailedCmd(a), isEnabledCmd(a),
		daemonReloadCmd(a), resetFailedCmd(a), killCmd(a), logsCmd(a), versionCmd(a), imageCmd(a),
	)
	root.AddCommand(unitFileCmds(a)...)
	root.AddCommand(reexecCmds(a)...)
	return root
}
