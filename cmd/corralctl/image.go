package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"corral.io/corral/agent/config"
	"corral.io/corral/runtimes/remote"
)

// imageCmd groups image verbs that the CRI cannot express. Pulls and lists
// go through the CRI (crictl); importing a tarball on an offline node does
// not exist there, so corralctl asks the container runtime's own client.
func imageCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "image", Short: "Manage container images of the container runtimes"}
	c.AddCommand(imageImportCmd(a))
	return c
}

// imageImportCmd loads FILE.tar into the image store of the handler's
// runtime (containerd: namespace k8s.io, where CRI pods find it). It runs
// on the node, as root, like the runtime's socket requires; the agent is
// not involved, so it also works while the agent is down.
func imageImportCmd(a *app) *cobra.Command {
	var handler, tool string
	c := &cobra.Command{
		Use:   "import FILE.tar",
		Short: "Import an image tarball (docker save or OCI archive) into a container runtime",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(a.root)
			if err != nil {
				return exitf(exitFailure, "%v", err)
			}
			name, h, err := importHandler(cfg, handler)
			if err != nil {
				return exitf(exitFailure, "%v", err)
			}
			if _, err := os.Stat(args[0]); err != nil {
				return exitf(exitFailure, "image import: %v", err)
			}
			argv, err := remote.ImportArgv(h.Backend, h.Address, tool, args[0])
			if err != nil {
				return exitf(exitFailure, "handler %s: %v", name, err)
			}
			x := exec.CommandContext(cmd.Context(), argv[0], argv[1:]...)
			x.Stdout, x.Stderr = a.stdout, a.stderr
			if err := x.Run(); err != nil {
				return exitf(exitFailure, "image import into handler %s (%s): %s: %v", name, h.Backend, strings.Join(argv, " "), err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&handler, "handler", "", "runtime handler whose runtime gets the image (default: the only containerd or isulad handler)")
	c.Flags().StringVar(&tool, "tool", "", "runtime client binary (default: ctr or isula from PATH)")
	return c
}

// importHandler picks the named handler, or the one remote-CRI handler.
func importHandler(cfg *config.Config, name string) (string, config.Handler, error) {
	if name != "" {
		h, ok := cfg.Handlers[name]
		if !ok {
			return "", h, fmt.Errorf("image import: no handler %q in %s", name, cfg.Path)
		}
		return name, h, nil
	}
	var found []string
	for _, n := range cfg.HandlerNames() {
		if b := cfg.Handlers[n].Backend; b == config.BackendContainerd || b == config.BackendIsulad {
			found = append(found, n)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], cfg.Handlers[found[0]], nil
	case len(found) == 0:
		return "", config.Handler{}, fmt.Errorf("image import: no containerd or isulad handler configured (%s)", cfg.Path)
	}
	// Several handlers on one runtime are common (runc and kata on one
	// containerd): any will do when they share the address.
	addr := cfg.Handlers[found[0]].Address
	for _, n := range found[1:] {
		if cfg.Handlers[n].Address != addr {
			return "", config.Handler{}, fmt.Errorf("image import: handlers %s use different runtimes; pick one with --handler", strings.Join(found, ", "))
		}
	}
	return found[0], cfg.Handlers[found[0]], nil
}
