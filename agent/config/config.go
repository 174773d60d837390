// Package config reads Corral's node configuration file,
// <root>/etc/corral/corral.toml: which runtime handlers exist, which backend
// serves each, the default handler for pods that name none, and where the
// CRI streaming server and CNI live. The key names are fixed by
// ../shared/DESIGN.md ("Configuration file") because tooling writes them.
//
// The file is strict: an unknown key or backend is an error naming the file
// and the key, since a typo silently ignored would route pods to the wrong
// runtime.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Backend kinds a handler may name.
const (
	BackendNative     = "native"
	BackendContainerd = "containerd"
	BackendIsulad     = "isulad"
	BackendQemu       = "qemu"
)

// Defaults for keys the file may leave out.
const (
	DefaultCNIConfDir    = "/etc/cni/net.d"
	DefaultCNIBinDir     = "/usr/lib/cni"
	DefaultStreamAddress = "127.0.0.1:0"
)

// defaultAddress is the socket a remote-CRI backend listens on when its
// handler gives no address.
var defaultAddress = map[string]string{
	BackendContainerd: "/run/containerd/containerd.sock",
	BackendIsulad:     "/var/run/isulad.sock",
}

// Config is the parsed file with defaults applied.
type Config struct {
	CRI      CRI                `toml:"cri"`
	Handlers map[string]Handler `toml:"handlers"`
	CNI      CNI                `toml:"cni"`
	// Path is the file the configuration came from; "" for the embedded
	// default.
	Path string `toml:"-"`
}

// CRI configures the CRI server.
type CRI struct {
	// DefaultHandler serves pods with neither a runtime_handler nor a
	// corral.io/runtime annotation.
	DefaultHandler string `toml:"default_handler"`
	// StreamAddress is host:port of the exec/attach/port-forward server.
	StreamAddress string `toml:"stream_address"`
}

// Handler is one runtime handler (a RuntimeClass handler name).
type Handler struct {
	Backend string `toml:"backend"`
	Address string `toml:"address"` // remote CRI socket (containerd, isulad)
	Kernel  string `toml:"kernel"`  // qemu
	Initrd  string `toml:"initrd"`  // qemu
}

// CNI says where network configurations and plugins are. The paths are host
// paths, not under --root: the plugins are the host's.
type CNI struct {
	ConfDir string `toml:"conf_dir"`
	BinDir  string `toml:"bin_dir"`
}

// Path is where the file lives under root.
func Path(root string) string { return filepath.Join(root, "etc", "corral", "corral.toml") }

// Load reads Path(root); a missing file gives Default().
func Load(root string) (*Config, error) {
	p := Path(root)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, p)
}

// Default is the configuration without a file: only the native handler,
// which is also the default.
func Default() *Config {
	c := &Config{}
	if err := c.complete(""); err != nil {
		panic(err) // the empty config is valid by construction
	}
	return c
}

// Parse decodes data; name (the file path) goes into every error.
func Parse(data []byte, name string) (*Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("config %s: unknown key %s", name, strings.Join(keys, ", "))
	}
	if err := c.complete(name); err != nil {
		return nil, err
	}
	c.Path = name
	return &c, nil
}

// complete validates c and fills in defaults.
func (c *Config) complete(name string) error {
	if len(c.Handlers) == 0 {
		c.Handlers = map[string]Handler{BackendNative: {Backend: BackendNative}}
	}
	for _, n := range c.HandlerNames() {
		h := c.Handlers[n]
		if n == "" || strings.ContainsAny(n, " \t\n/") {
			return fmt.Errorf("config %s: handler name %q is not a valid RuntimeClass handler", name, n)
		}
		switch h.Backend {
		case BackendNative, BackendQemu:
		case BackendContainerd, BackendIsulad:
			if h.Address == "" {
				h.Address = defaultAddress[h.Backend]
			}
		case "":
			return fmt.Errorf("config %s: handlers.%s: backend is required (one of native, containerd, isulad, qemu)", name, n)
		default:
			return fmt.Errorf("config %s: handlers.%s: unknown backend %q (known: native, containerd, isulad, qemu)", name, n, h.Backend)
		}
		c.Handlers[n] = h
	}
	if c.CRI.DefaultHandler == "" {
		if _, ok := c.Handlers[BackendNative]; ok {
			c.CRI.DefaultHandler = BackendNative
		} else if len(c.Handlers) == 1 {
			c.CRI.DefaultHandler = c.HandlerNames()[0]
		} else {
			return fmt.Errorf("config %s: cri.default_handler is required when there is no native handler", name)
		}
	}
	if _, ok := c.Handlers[c.CRI.DefaultHandler]; !ok {
		return fmt.Errorf("config %s: cri.default_handler %q is not a configured handler (known: %s)",
			name, c.CRI.DefaultHandler, strings.Join(c.HandlerNames(), ", "))
	}
	if c.CRI.StreamAddress == "" {
		c.CRI.StreamAddress = DefaultStreamAddress
	}
	if c.CNI.ConfDir == "" {
		c.CNI.ConfDir = DefaultCNIConfDir
	}
	if c.CNI.BinDir == "" {
		c.CNI.BinDir = DefaultCNIBinDir
	}
	return nil
}

// HandlerNames lists the configured handlers, sorted.
func (c *Config) HandlerNames() []string {
	names := make([]string, 0, len(c.Handlers))
	for n := range c.Handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
