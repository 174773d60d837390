package remote

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// KeepsBackendIDs says that the remote's IDs may be shown to clients as
// Corral's own: they are 64 hex characters, unique on the node, and other
// consumers of the remote (NRI plugins, crictl on containerd's socket, log
// paths) know the objects by them. The CRI server declares the interface.
func (b *Backend) KeepsBackendIDs() bool { return true }

// Features are the remote's answer for the handler this backend serves
// (the remote's entry for the translated name), and its runtime-wide
// features: what Corral advertises must be what the remote can do, or
// kubelet and critest skip or misuse user namespaces, recursive read-only
// mounts and supplemental-groups policy.
func (b *Backend) Features(ctx context.Context) (*runtimeapi.RuntimeHandlerFeatures, *runtimeapi.RuntimeFeatures, error) {
	st, err := b.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, nil, b.wrap("status", "", err)
	}
	b.learnHandlers(st)
	want := b.remoteHandler(ctx, b.handler)
	var hf *runtimeapi.RuntimeHandlerFeatures
	for _, h := range st.GetRuntimeHandlers() {
		if h.GetName() == want {
			hf = h.GetFeatures()
		}
	}
	return hf, st.GetFeatures(), nil
}
