package ebpf

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/runtime"
)

// TestCodeLimit: an object over the tenant's max code is refused before
// it is parsed (1 MiB by default).
func TestCodeLimit(t *testing.T) {
	obj := make([]byte, runtime.DefaultCodeLimit+1)
	_, err := testRuntime().Compile(context.Background(), obj, runtime.Config{})
	if !errors.Is(err, runtime.ErrLimit) || !strings.Contains(err.Error(), "max code") {
		t.Fatalf("got %v, want ErrLimit naming the max code", err)
	}
	_, err = testRuntime().Compile(context.Background(), obj, runtime.Config{CodeLimit: 2 << 20})
	if !errors.Is(err, runtime.ErrInvalidCode) {
		t.Fatalf("under a 2 MiB limit: got %v, want it parsed (and refused as garbage)", err)
	}
}
