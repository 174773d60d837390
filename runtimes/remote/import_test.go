package remote

import (
	"strings"
	"testing"
)

func TestImportArgv(t *testing.T) {
	for _, tc := range []struct {
		kind, addr, tool string
		want             string
		err              bool
	}{
		{KindContainerd, "/run/c/c.sock", "", "ctr --address /run/c/c.sock --namespace k8s.io images import img.tar", false},
		{KindContainerd, "unix:///x.sock", "/opt/ctr", "/opt/ctr --address /x.sock --namespace k8s.io images import img.tar", false},
		{KindContainerd, "", "", "ctr --address /run/containerd/containerd.sock --namespace k8s.io images import img.tar", false},
		{KindIsulad, "", "", "isula --host unix:///var/run/isulad.sock load --input img.tar", false},
		{"native", "", "", "", true},
	} {
		argv, err := ImportArgv(tc.kind, tc.addr, tc.tool, "img.tar")
		if (err != nil) != tc.err || strings.Join(argv, " ") != tc.want {
			t.Errorf("ImportArgv(%s, %q, %q) = %q, %v; want %q", tc.kind, tc.addr, tc.tool, argv, err, tc.want)
		}
	}
}
