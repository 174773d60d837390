// Command corralctl is Corral's systemctl: it talks to the agent over
// <root>/run/corral/api.sock and keeps systemctl's verbs, output and exit
// codes so that scripts and muscle memory carry over.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
