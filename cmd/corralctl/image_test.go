package main

import (
	"testing"

	"corral.io/corral/agent/config"
)

func TestImportHandler(t *testing.T) {
	for _, tc := range []struct {
		name, toml, flag, want string
		err                    bool
	}{
		{"only native", "", "", "", true},
		{"the one containerd", "[handlers.native]\nbackend=\"native\"\n[handlers.runc]\nbackend=\"containerd\"\n", "", "runc", false},
		{"two on one socket", "[cri]\ndefault_handler=\"runc\"\n[handlers.runc]\nbackend=\"containerd\"\n[handlers.kata]\nbackend=\"containerd\"\n", "", "kata", false},
		{"two runtimes need --handler", "[cri]\ndefault_handler=\"runc\"\n[handlers.runc]\nbackend=\"containerd\"\n[handlers.isulad]\nbackend=\"isulad\"\n", "", "", true},
		{"--handler picks", "[cri]\ndefault_handler=\"runc\"\n[handlers.runc]\nbackend=\"containerd\"\n[handlers.isulad]\nbackend=\"isulad\"\n", "isulad", "isulad", false},
		{"--handler unknown", "[cri]\ndefault_handler=\"runc\"\n[handlers.runc]\nbackend=\"containerd\"\n", "nope", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			if tc.toml != "" {
				var err error
				if cfg, err = config.Parse([]byte(tc.toml), "corral.toml"); err != nil {
					t.Fatal(err)
				}
			}
			got, _, err := importHandler(cfg, tc.flag)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("importHandler = %q, %v; want %q (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}
