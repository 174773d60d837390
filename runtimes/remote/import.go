package remote

import (
	"fmt"
	"strings"
)

// ImageNamespace is containerd's namespace for CRI images: an image
// imported anywhere else is invisible to pods.
const ImageNamespace = "k8s.io"

// ImportArgv is the command that loads an image tarball (docker save or OCI
// layout tar) into the remote's image store, for offline nodes:
// containerd's `ctr images import` into k8s.io, or iSulad's `isula load`.
// tool is the client binary ("" = ctr or isula from PATH).
//
// It is a subprocess on purpose: the CRI has no import call, and linking
// containerd's Go client for this one verb would cost every agent and CLI
// binary megabytes (see docs/CONTAINERS.md) for an operation an operator
// runs by hand a few times per node.
func ImportArgv(kind, address, tool, file string) ([]string, error) {
	path := strings.TrimPrefix(address, "unix://")
	switch kind {
	case KindContainerd:
		if path == "" {
			path = DefaultContainerdAddress
		}
		if tool == "" {
			tool = "ctr"
		}
		// --all-platforms is off: only the node's platform is unpacked,
		// like a CRI pull; the snapshotter is the CRI default (overlayfs).
		return []string{tool, "--address", path, "--namespace", ImageNamespace, "images", "import", file}, nil
	case KindIsulad:
		if path == "" {
			path = strings.TrimPrefix(DefaultIsuladAddress, "unix://")
		}
		if tool == "" {
			tool = "isula"
		}
		return []string{tool, "--host", "unix://" + path, "load", "--input", file}, nil
	}
	return nil, fmt.Errorf("image import: backend %q has no image store to import into", kind)
}
