package apiserver_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/apiserver/apiservertest"
	corralv1 "corral.io/corral/api/corral/v1"
)

// reexecFake is the fake manager with the optional Reexecer ability.
type reexecFake struct {
	*apiservertest.Fake
	paths []string
	err   error
}

func (f *reexecFake) Reexec(_ context.Context, path string) error {
	f.paths = append(f.paths, path)
	return f.err
}

func TestReexec(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string // metadata; "" = none
		err  error
		code codes.Code
	}{
		{"daemon-reexec", "", nil, codes.OK},
		{"upgrade", "/usr/lib/corral/corral-agent.new", nil, codes.OK},
		{"bad binary", "relative/agent", fmt.Errorf("upgrade to relative/agent: %w", apiserver.ErrInvalid), codes.InvalidArgument},
		{"busy", "", fmt.Errorf("re-exec: %w", apiserver.ErrUnavailable), codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			f := &reexecFake{Fake: fooFake(), err: tc.err}
			l, err := apiserver.Listen(apiserver.SocketPath(root))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- apiserver.New(f, apiserver.Options{}).Serve(ctx, l) }()
			defer func() { cancel(); <-done }()
			_, sc := dial(t, root)
			_, err = sc.Reexec(ctxT(t), &corralv1.ReexecRequest{Path: tc.path})
			if status.Code(err) != tc.code {
				t.Fatalf("Reexec: %v, want %v", err, tc.code)
			}
			if len(f.paths) != 1 || f.paths[0] != tc.path {
				t.Errorf("manager got paths %q, want [%q]", f.paths, tc.path)
			}
		})
	}
}
