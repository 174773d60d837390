package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corralv1 "corral.io/corral/api/corral/v1"
)

func showCmd(a *app) *cobra.Command {
	var props []string
	var all bool
	c := &cobra.Command{
		Use:   "show UNIT...",
		Short: "Show properties of one or more units",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uc, err := a.units()
			if err != nil {
				return err
			}
			// -p may be given several times and as a comma list.
			var want []string
			for _, p := range props {
				want = append(want, strings.Split(p, ",")...)
			}
			resp, err := uc.Show(cmd.Context(), &corralv1.ShowRequest{Names: mangleAll(args, ".service"), Properties: want, All: all})
			if err != nil {
				return a.rpcError("get properties", err)
			}
			if a.json() {
				return writeJSONList(a.stdout, resp.GetUnits())
			}
			for i, u := range resp.GetUnits() {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				for _, p := range u.GetProperties() {
					fmt.Fprintf(a.stdout, "%s=%s\n", p.GetKey(), p.GetValue())
				}
			}
			return nil
		},
	}
	c.Flags().StringArrayVarP(&props, "property", "p", nil, "show only these properties")
	c.Flags().BoolVarP(&all, "all", "a", false, "also show properties with empty values")
	return c
}

func catCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "cat UNIT...",
		Short: "Show the files of one or more units",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uc, err := a.units()
			if err != nil {
				return err
			}
			var units []*corralv1.CatUnit
			var failed error
			for _, n := range mangleAll(args, ".service") {
				resp, err := uc.Cat(cmd.Context(), &corralv1.CatRequest{Names: []string{n}})
				if status.Code(err) == codes.NotFound {
					fmt.Fprintf(a.stderr, "No files found for %s.\n", n)
					failed = &exitError{code: exitFailure}
					continue
				}
				if err != nil {
					return a.rpcError("cat "+n, err)
				}
				units = append(units, resp.GetUnits()...)
			}
			if a.json() {
				if err := writeJSONList(a.stdout, units); err != nil {
					return err
				}
				return failed
			}
			for i, u := range units {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				fmt.Fprint(a.stdout, u.GetText())
			}
			return failed
		},
	}
}

func listUnitsCmd(a *app) *cobra.Command {
	var all bool
	var types, states []string
	c := &cobra.Command{
		Use:     "list-units [PATTERN...]",
		Aliases: []string{"list"},
		Short:   "List units",
		RunE: func(cmd *cobra.Command, args []string) error {
			uc, err := a.units()
			if err != nil {
				return err
			}
			resp, err := uc.ListUnits(cmd.Context(), &corralv1.ListUnitsRequest{
				All: all, Types: splitList(types), States: splitList(states), Patterns: mangleAll(args, ".service"),
			})
			if err != nil {
				return a.rpcError("list units", err)
			}
			if a.json() {
				return writeJSONList(a.stdout, resp.GetUnits())
			}
			units := resp.GetUnits()
			if len(units) == 0 {
				fmt.Fprintln(a.stdout, "0 loaded units listed.")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 1, ' ', 0)
			fmt.Fprintln(tw, "  UNIT\tLOAD\tACTIVE\tSUB\tDESCRIPTION")
			for _, u := range units {
				mark := " "
				if u.GetActiveState() == "failed" || u.GetLoadState() != "loaded" {
					mark = "●"
				}
				fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\n", mark, u.GetName(), u.GetLoadState(), u.GetActiveState(), u.GetSubState(), u.GetDescription())
			}
			tw.Flush()
			fmt.Fprintln(a.stdout)
			fmt.Fprintln(a.stdout, "LOAD   = Reflects whether the unit definition was properly loaded.")
			fmt.Fprintln(a.stdout, "ACTIVE = The high-level unit activation state, i.e. generalization of SUB.")
			fmt.Fprintln(a.stdout, "SUB    = The low-level unit activation state, values depend on unit type.")
			fmt.Fprintln(a.stdout)
			if all {
				fmt.Fprintf(a.stdout, "%d loaded units listed.\n", len(units))
			} else {
				fmt.Fprintf(a.stdout, "%d loaded units listed. Pass --all to see loaded but inactive units, too.\n", len(units))
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "show inactive units too")
	c.Flags().StringSliceVarP(&types, "type", "t", nil, "unit types to list (service, socket, ...)")
	c.Flags().StringSliceVar(&states, "state", nil, "load, active or sub states to list")
	return c
}

// splitList accepts both repeated flags and comma lists ("--type=service,socket").
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func listJobsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list-jobs",
		Short: "List pending jobs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			uc, err := a.units()
			if err != nil {
				return err
			}
			resp, err := uc.ListJobs(cmd.Context(), &corralv1.ListJobsRequest{})
			if err != nil {
				return a.rpcError("list jobs", err)
			}
			if a.json() {
				return writeJSONList(a.stdout, resp.GetJobs())
			}
			if len(resp.GetJobs()) == 0 {
				fmt.Fprintln(a.stdout, "No jobs running.")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 1, ' ', 0)
			fmt.Fprintln(tw, "JOB\tUNIT\tTYPE\tSTATE")
			for _, j := range resp.GetJobs() {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", j.GetId(), j.GetUnit(), j.GetType(), j.GetState())
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "\n%d jobs listed.\n", len(resp.GetJobs()))
			return nil
		},
	}
}

// stateCheck is the shared shape of is-active / is-failed / is-enabled:
// print one state per unit, succeed if any unit matches.
type stateCheck struct {
	use, short string
	get        func(a *app, cmd *cobra.Command, name string) (string, error)
	ok         func(state string) bool
	failCode   int
}

func (sc stateCheck) cmd(a *app) *cobra.Command {
	var quiet bool
	c := &cobra.Command{
		Use:   sc.use + " UNIT...",
		Short: sc.short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			type result struct {
				Unit  string `json:"unit"`
				State string `json:"state"`
			}
			var results []result
			any := false
			for _, n := range mangleAll(args, ".service") {
				st, err := sc.get(a, cmd, n)
				if err != nil {
					return err
				}
				if st == "" {
					continue
				}
				results = append(results, result{n, st})
				if sc.ok(st) {
					any = true
				}
				if !quiet && !a.json() {
					fmt.Fprintln(a.stdout, st)
				}
			}
			if a.json() && !quiet {
				if err := writeJSON(a.stdout, results); err != nil {
					return err
				}
			}
			if !any {
				return &exitError{code: sc.failCode}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing, only set the exit code")
	return c
}

func activeState(a *app, cmd *cobra.Command, name string) (string, error) {
	uc, err := a.units()
	if err != nil {
		return "", err
	}
	resp, err := uc.GetUnit(cmd.Context(), &corralv1.GetUnitRequest{Name: name})
	if status.Code(err) == codes.NotFound {
		return "inactive", nil
	}
	if err != nil {
		return "", a.rpcError("get state of "+name, err)
	}
	return resp.GetUnit().GetActiveState(), nil
}

func isActiveCmd(a *app) *cobra.Command {
	return stateCheck{
		use: "is-active", short: "Check whether units are active",
		get: activeState, ok: isActive, failCode: exitNotRunning,
	}.cmd(a)
}

func isFailedCmd(a *app) *cobra.Command {
	return stateCheck{
		use: "is-failed", short: "Check whether units are failed",
		get: activeState, ok: func(s string) bool { return s == "failed" }, failCode: exitFailure,
	}.cmd(a)
}

func isEnabledCmd(a *app) *cobra.Command {
	return stateCheck{
		use: "is-enabled", short: "Check whether unit files are enabled",
		get: func(a *app, cmd *cobra.Command, name string) (string, error) {
			uc, err := a.units()
			if err != nil {
				return "", err
			}
			resp, err := uc.IsEnabled(cmd.Context(), &corralv1.IsEnabledRequest{Names: []string{name}})
			if status.Code(err) == codes.NotFound {
				fmt.Fprintf(a.stderr, "Failed to get unit file state for %s: No such file or directory\n", name)
				return "", nil
			}
			if err != nil {
				return "", a.rpcError("get unit file state for "+name, err)
			}
			return resp.GetUnits()[0].GetState(), nil
		},
		// systemctl(1): these states make is-enabled succeed.
		ok: func(s string) bool {
			switch s {
			case "enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient":
				return true
			}
			return false
		},
		failCode: exitFailure,
	}.cmd(a)
}
