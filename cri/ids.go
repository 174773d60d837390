package cri

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"corral.io/corral/runtimes"
)

// Store is the part of the state DB (agent/state.DB) the server uses: its
// generic JSON records. The server owns the buckets below.
type Store interface {
	Put(bucket, key string, v any) error
	Get(bucket, key string, v any) (bool, error)
	Delete(bucket, key string) error
	List(bucket string, fn func(key string, data json.RawMessage) error) error
}

// Buckets of the state DB that hold the ID maps, keyed by Corral ID.
const (
	BucketPods       = "cri-pods"
	BucketContainers = "cri-containers"
)

const recordVersion = 1

// record maps one Corral ID to the backend object.
type record struct {
	Version   int    `json:"version"`
	Handler   string `json:"handler"`
	BackendID string `json:"backend_id"`
	Pod       string `json:"pod,omitempty"` // containers: the Corral ID of their pod
}

type kind int

const (
	kindPod kind = iota
	kindContainer
)

func (k kind) String() string { return [...]string{"pod sandbox", "container"}[k] }

func (k kind) bucket() string { return [...]string{BucketPods, BucketContainers}[k] }

type revKey struct {
	kind      kind
	handler   string
	backendID string
}

// ids is the write-through cache of the two buckets: lookups happen on every
// call and in every list, so they must not hit bbolt.
type ids struct {
	db  Store
	mu  sync.RWMutex
	fwd [2]map[string]record
	rev map[revKey]string
}

func loadIDs(db Store) (*ids, error) {
	m := &ids{db: db, fwd: [2]map[string]record{{}, {}}, rev: map[revKey]string{}}
	for _, k := range []kind{kindPod, kindContainer} {
		err := db.List(k.bucket(), func(key string, data json.RawMessage) error {
			var r record
			if err := json.Unmarshal(data, &r); err != nil {
				return fmt.Errorf("cri: state record %s/%s: %w", k.bucket(), key, err)
			}
			m.fwd[k][key] = r
			m.rev[revKey{k, r.Handler, r.BackendID}] = key
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cri: loading ID map: %w", err)
		}
	}
	return m, nil
}

// newID returns a fresh Corral ID: 64 hex characters, like containerd's.
func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// put stores the mapping before the ID is handed to kubelet.
func (m *ids) put(k kind, id string, r record) error {
	r.Version = recordVersion
	if err := m.db.Put(k.bucket(), id, r); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fwd[k][id] = r
	m.rev[revKey{k, r.Handler, r.BackendID}] = id
	return nil
}

// get resolves id, or a unique prefix of it (crictl accepts short IDs).
// It returns the full ID.
func (m *ids) get(k kind, id string) (string, record, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r, ok := m.fwd[k][id]; ok {
		return id, r, nil
	}
	if id != "" && len(id) < 64 {
		var full string
		for cand := range m.fwd[k] {
			if strings.HasPrefix(cand, id) {
				if full != "" {
					return "", record{}, fmt.Errorf("%s ID prefix %q is ambiguous: %w", k, id, runtimes.ErrInvalid)
				}
				full = cand
			}
		}
		if full != "" {
			return full, m.fwd[k][full], nil
		}
	}
	return "", record{}, fmt.Errorf("%s %q: %w", k, id, runtimes.ErrNotFound)
}

// corral translates a backend ID to the Corral ID; false for objects the
// backend has but Corral did not create.
func (m *ids) corral(k kind, handler, backendID string) (string, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.rev[revKey{k, handler, backendID}]
	return id, ok
}

// containersOf lists the Corral IDs of the pod's containers.
func (m *ids) containersOf(pod string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	for id, r := range m.fwd[kindContainer] {
		if r.Pod == pod {
			out = append(out, id)
		}
	}
	return out
}

// remove forgets id; an unknown id is not an error.
func (m *ids) remove(k kind, id string) error {
	if err := m.db.Delete(k.bucket(), id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.fwd[k][id]; ok {
		delete(m.rev, revKey{k, r.Handler, r.BackendID})
		delete(m.fwd[k], id)
	}
	return nil
}

// idKeeper is a backend whose IDs clients may see as Corral's (a remote
// CRI runtime: NRI plugins and its own tools know objects by them).
type idKeeper interface{ KeepsBackendIDs() bool }

// adoptID returns the backend's ID instead of the fresh one when the
// backend keeps its IDs, the ID looks like Corral's (64 hex) and no other
// object has it.
func (s *Server) adoptID(k kind, b runtimes.Backend, fresh, backendID string) string {
	ik, ok := b.(idKeeper)
	if !ok || !ik.KeepsBackendIDs() || len(backendID) != 64 {
		return fresh
	}
	if _, err := hex.DecodeString(backendID); err != nil {
		return fresh
	}
	if _, _, err := s.ids.get(k, backendID); err == nil {
		return fresh
	}
	return backendID
}
