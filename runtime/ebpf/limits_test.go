package ebpf

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/adversary"
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

// TestAdversaryInstall compiles the hostile eBPF shapes of issue 11 in a
// process of their own (both engines): each is installed within 2 s of
// CPU and 256 MB of peak memory, or refused within 100 ms with a reason.
func TestAdversaryInstall(t *testing.T) {
	if shape, ok := adversary.Child(); ok {
		for _, s := range adversary.BPFShapes {
			if shape == s.Name {
				code := s.Make()
				rt := testRuntime()
				adversary.Report(func() error {
					m, err := rt.Compile(context.Background(), code, runtime.Config{MemoryLimit: 64 << 10, CodeLimit: runtime.MaxCodeLimit})
					if err == nil {
						jit := ""
						if m.(*Module).Compiled() {
							jit = "machine code"
						}
						t.Logf("%s: %s", shape, jit)
					}
					return err
				}, func(err error) bool {
					return errors.Is(err, runtime.ErrLimit) || errors.Is(err, runtime.ErrInvalidCode)
				})
				return
			}
		}
		t.Fatalf("no shape %q", shape)
	}
	for _, s := range adversary.BPFShapes {
		t.Run(s.Name, func(t *testing.T) {
			adversary.Check(t, s.Name, adversary.InChild(t, "TestAdversaryInstall", s.Name))
		})
	}
}
