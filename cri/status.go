package cri

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ConditionHandlerPrefix prefixes one extra condition per handler, so that
// a handler whose backend is down is visible without failing the node
// (RuntimeReady only follows the default handler).
const ConditionHandlerPrefix = "corral.io/handler/"

// readyTimeout bounds one backend's readiness check: Status is polled and
// must answer even when a remote backend hangs.
const readyTimeout = 2 * time.Second

// Status reports RuntimeReady (the default handler's backend), NetworkReady,
// a condition per handler and the runtime_handlers list.
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	st := &runtimeapi.RuntimeStatus{}
	def := s.backends[s.def]
	st.Conditions = append(st.Conditions, condition(runtimeapi.RuntimeReady, ready(ctx, def.Ready)))
	if nr, ok := def.(runtimes.NetworkReadier); ok {
		st.Conditions = append(st.Conditions, condition(runtimeapi.NetworkReady, ready(ctx, nr.NetworkReady)))
	} else {
		st.Conditions = append(st.Conditions, condition(runtimeapi.NetworkReady, s.cniReady()))
	}
	resp := &runtimeapi.StatusResponse{Status: st, Features: &runtimeapi.RuntimeFeatures{}}
	defHF, defRF := s.features(ctx, s.def)
	if defRF != nil {
		resp.Features = defRF
	}
	resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: "", Features: defHF}) // the default, as kubelet expects
	for _, h := range s.handlers {
		st.Conditions = append(st.Conditions, condition(ConditionHandlerPrefix+h, ready(ctx, s.backends[h].Ready)))
		hf, _ := s.features(ctx, h)
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: h, Features: hf})
	}
	if req.GetVerbose() {
		cfg, _ := json.Marshal(map[string]any{"default_handler": s.def, "handlers": s.handlers, "stream_address": s.StreamAddr()})
		resp.Info = map[string]string{"config": string(cfg)}
	}
	return resp, nil
}

type readiness struct {
	ok              bool
	reason, message string
}

func ready(ctx context.Context, f func(context.Context) (bool, string, string)) readiness {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ok, reason, msg := f(ctx)
	return readiness{ok, reason, msg}
}

func condition(typ string, r readiness) *runtimeapi.RuntimeCondition {
	return &runtimeapi.RuntimeCondition{Type: typ, Status: r.ok, Reason: r.reason, Message: r.message}
}

// featurer is a backend that knows what its runtime supports (a remote CRI
// runtime answers for itself).
type featurer interface {
	Features(ctx context.Context) (*runtimeapi.RuntimeHandlerFeatures, *runtimeapi.RuntimeFeatures, error)
}

// features of handler h: its backend's own answer, or none.
func (s *Server) features(ctx context.Context, h string) (*runtimeapi.RuntimeHandlerFeatures, *runtimeapi.RuntimeFeatures) {
	if f, ok := s.backends[h].(featurer); ok {
		cctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if hf, rf, err := f.Features(cctx); err == nil && hf != nil {
			return hf, rf
		}
	}
	return &runtimeapi.RuntimeHandlerFeatures{}, nil
}

// handlerInfo: Corral supports neither recursive read-only mounts nor user
// namespaces yet, for any backend it routes to.
func handlerInfo(name string) *runtimeapi.RuntimeHandler {
	return &runtimeapi.RuntimeHandler{Name: name, Features: &runtimeapi.RuntimeHandlerFeatures{}}
}

// cniReady is true once a CNI network configuration exists, the way
// containerd decides NetworkReady.
func (s *Server) cniReady() readiness {
	for _, pat := range []string{"*.conf", "*.conflist", "*.json"} {
		if m, _ := filepath.Glob(filepath.Join(s.cniDir, pat)); len(m) > 0 {
			return readiness{ok: true}
		}
	}
	msg := "no network config found in " + s.cniDir
	if _, err := os.Stat(s.cniDir); err != nil {
		msg = err.Error()
	}
	return readiness{reason: "NetworkPluginNotReady", message: msg}
}
