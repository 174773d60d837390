package tmpfiles

import (
	"crypto/rand"
	"os"
	"testing"
)

// The seed is credited (RNDADDENTROPY needs root, which the tests have).
func TestCreditSeed(t *testing.T) {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	if err := creditSeed(f, seed); err != nil {
		t.Fatalf("RNDADDENTROPY: %v", err)
	}
}
