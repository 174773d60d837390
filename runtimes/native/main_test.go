package native

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"corral.io/corral/agent/proc"
)

// TestMain makes the test binary the spawner's trampoline, and a tiny HTTP
// server for the network tests (a container command that needs nothing
// but this binary).
func TestMain(m *testing.M) {
	proc.MaybeTrampoline()
	if addr := os.Getenv("NATIVE_TEST_HTTP"); addr != "" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			host, _ := os.Hostname()
			fmt.Fprintf(w, "hello from %s\n", host)
		})
		fmt.Println("serving", addr)
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
