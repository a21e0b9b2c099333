package adversary

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"
)

// Install-time targets (issue 11): every hostile image installs within
// InstallCPU of CPU time and InstallMemory of peak resident memory, or is
// refused within RefuseCPU. Under the race detector, which multiplies
// both, RaceFactor scales them.
const (
	InstallCPU    = 2 * time.Second
	InstallMemory = 256 << 20
	RefuseCPU     = 100 * time.Millisecond
	RaceFactor    = 10
)

// EmulatorEnv names the emulator this test binary runs under, when it
// does (make test-arm32 sets qemu-arm): InChild starts the child through
// it, as the kernel cannot start a binary of another architecture itself
// (qemu-user without binfmt_misc: "exec format error").
const EmulatorEnv = "TC_TEST_EMULATOR"

// Calibrated reports whether the CPU and memory targets were measured on
// this kind of machine (wazero compiles on amd64 and arm64); elsewhere or
// emulated (CI runs 32-bit ARM under qemu-user, where everything takes 10
// to 50 times the CPU) only the refusal's reason is checked.
func Calibrated() bool {
	return (goruntime.GOARCH == "amd64" || goruntime.GOARCH == "arm64") && os.Getenv(EmulatorEnv) == ""
}

// Result is what one install cost, measured in a process of its own.
type Result struct {
	CPU     time.Duration // CPU time of the install call, all threads (GC included)
	PeakRSS int64         // the child's peak resident memory, bytes
	Err     string        // "" when installed
	Refused bool          // the error wraps the runtime's limit or invalid-code class
}

const childEnv = "TC_ADVERSARY_CHILD"

// Child reports whether this process is a child started by InChild, and
// the shape it must install.
func Child() (string, bool) {
	s := os.Getenv(childEnv)
	return s, s != ""
}

// Report is the child's answer: it prints the result for InChild.
// install is the call to measure; refused classifies its error.
func Report(install func() error, refused func(error) bool) {
	before := ProcessCPU()
	err := install()
	r := Result{CPU: ProcessCPU() - before}
	if err != nil {
		r.Err, r.Refused = err.Error(), refused(err)
	}
	b, _ := json.Marshal(r)
	fmt.Printf("\nadversary-result %s\n", b)
}

// InChild runs test (a Test function of the calling package that calls
// Child and Report) in a fresh copy of the test binary for shape.
func InChild(t *testing.T, test, shape string) Result {
	t.Helper()
	args := []string{os.Args[0], "-test.run", "^" + test + "$", "-test.count", "1"}
	if emu := os.Getenv(EmulatorEnv); emu != "" {
		args = append([]string{emu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+shape)
	out, err := cmd.Output()
	if errors.Is(err, syscall.ENOEXEC) {
		t.Skipf("%s: cannot start a copy of this test binary (%v): under an emulator, name it in %s", shape, err, EmulatorEnv)
	}
	// A package's TestMain may run its tests more than once (the eBPF
	// runtime's runs them again interpreted): the costliest run counts.
	var r Result
	found := false
	for _, line := range splitLines(out) {
		if rest, ok := cutPrefix(line, "adversary-result "); ok {
			var one Result
			if err := json.Unmarshal([]byte(rest), &one); err != nil {
				t.Fatalf("%s: %v", shape, err)
			}
			if !found || one.CPU > r.CPU || (one.Err != "" && r.Err == "") {
				r = one
			}
			found = true
		}
	}
	if !found {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: the child failed: %v\n%s\n%s", shape, err, out, ee.Stderr)
		}
		t.Fatalf("%s: no result from the child (%v):\n%s", shape, err, out)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.PeakRSS = int64(ru.Maxrss) * 1024
	}
	return r
}

// Check applies the targets to r, the install of s (named shape):
// installed within InstallCPU and InstallMemory, or refused (with a
// reason) within RefuseCPU; an Invalid shape must be refused.
func Check(t *testing.T, shape string, s Shape, r Result) {
	t.Helper()
	if s.Invalid && r.Err == "" {
		t.Errorf("%s: invalid code installed", shape)
	}
	f := time.Duration(1)
	if Race {
		f = RaceFactor
	}
	t.Logf("%s: cpu %v, peak RSS %d MB, err %q", shape, r.CPU.Round(time.Millisecond), r.PeakRSS>>20, r.Err)
	if !Calibrated() {
		if r.Err != "" && !r.Refused {
			t.Errorf("%s: refused without a limit or invalid-code reason: %s", shape, r.Err)
		}
		return
	}
	switch {
	case r.Err == "":
		if r.CPU > f*InstallCPU || r.PeakRSS > int64(f)*InstallMemory {
			t.Errorf("%s installed in %v of CPU with %d MB peak, over %v / %d MB", shape, r.CPU, r.PeakRSS>>20, f*InstallCPU, (int64(f)*InstallMemory)>>20)
		}
	case !r.Refused:
		t.Errorf("%s: refused without a limit or invalid-code reason: %s", shape, r.Err)
	case r.CPU > f*RefuseCPU:
		t.Errorf("%s refused after %v of CPU, over %v: %s", shape, r.CPU, f*RefuseCPU, r.Err)
	}
}

// ProcessCPU is the CPU time this process has used, all threads.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func splitLines(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return append(out, string(b[start:]))
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}
