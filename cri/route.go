package cri

import (
	"fmt"
	"strings"

	"corral.io/corral/runtimes"
)

// route picks the handler of a pod: its runtime_handler; when empty, the
// corral.io/runtime annotation; when both are empty, the default.
func (s *Server) route(handler string, annotations map[string]string) (string, runtimes.Backend, error) {
	name, from := handler, "runtime_handler"
	if name == "" {
		name, from = annotations[AnnotationRuntime], "annotation "+AnnotationRuntime
	}
	if name == "" {
		name = s.def
	}
	b, ok := s.backends[name]
	if !ok {
		return "", nil, fmt.Errorf("%s: runtime handler %q is not configured (known: %s): %w",
			from, name, strings.Join(s.handlers, ", "), runtimes.ErrInvalid)
	}
	return name, b, nil
}

// target is a resolved Corral object: its full ID, record and backend.
type target struct {
	id      string
	rec     record
	backend runtimes.Backend
}

func (s *Server) lookup(k kind, id string) (target, error) {
	if id == "" {
		return target{}, fmt.Errorf("%s ID is empty: %w", k, runtimes.ErrInvalid)
	}
	full, r, err := s.ids.get(k, id)
	if err != nil {
		return target{}, err
	}
	b, ok := s.backends[r.Handler]
	if !ok {
		return target{}, fmt.Errorf("%s %s: runtime handler %q is no longer configured: %w", k, full, r.Handler, runtimes.ErrUnavailable)
	}
	return target{full, r, b}, nil
}

func (s *Server) pod(id string) (target, error)       { return s.lookup(kindPod, id) }
func (s *Server) container(id string) (target, error) { return s.lookup(kindContainer, id) }

// unsupported is the error for an optional ability the backend lacks.
func unsupported(handler, what string) error {
	return fmt.Errorf("runtime handler %q does not support %s: %w", handler, what, runtimes.ErrUnsupported)
}
