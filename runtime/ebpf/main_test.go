package ebpf

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// interpretEnv makes the package's tests run their guests in the
// interpreter. Where the platform compiles, TestMain runs every test a
// second time that way, so both engines pass the same suite.
const interpretEnv = "TC_EBPF_INTERPRET"

// singlePassEnv skips the second run, for emulators that cannot start a
// binary of another architecture from inside one (qemu-user without
// binfmt_misc); run the interpreter pass by hand there.
const singlePassEnv = "TC_EBPF_SINGLE_PASS"

// testRuntime is the engine under test.
func testRuntime() *Runtime {
	if os.Getenv(interpretEnv) != "" {
		return NewInterpreter()
	}
	return New()
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if !jitSupported || os.Getenv(interpretEnv) != "" || os.Getenv(singlePassEnv) != "" || code != 0 || benchOrFuzz() {
		os.Exit(code)
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), interpretEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "ebpf tests in the interpreter: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// benchOrFuzz reports whether the run measures or fuzzes, which the
// engines do on their own terms.
func benchOrFuzz() bool {
	for _, name := range []string{"test.bench", "test.fuzz"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return true
		}
	}
	return false
}
