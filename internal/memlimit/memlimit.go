// Package memlimit is a device process's memory policy: which soft memory
// limit the Go runtime works to (runtime/debug.SetMemoryLimit), from the
// operator's flag, GOMEMLIMIT or the process's cgroup. The limit belongs to
// the process, not to one device (a process may run many, as fleet
// simulate does), so the command line decides it once, before the device
// starts.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tinycontainer/tinycontainer/meta"
)

// Where a limit came from.
const (
	FromFlag   = "flag"       // --memory-limit SIZE
	FromEnv    = "GOMEMLIMIT" // the Go runtime's own variable, applied at process start
	FromCgroup = "cgroup"     // CgroupShare of the process's cgroup memory limit
	FromNone   = "none"       // no limit: the heap grows to GOGC's goal
)

// MinLimit is the smallest limit accepted: below it the Go runtime and a
// device's own tables alone would keep the collector running.
const MinLimit = 16 << 20

// CgroupShare is the part (in percent) of a cgroup memory limit used as the
// default soft limit; the rest is for memory the Go runtime does not count
// (compiled guest code, the binary) and for overshoot.
const CgroupShare = 80

// ErrInvalid marks a limit that cannot be understood or is too small.
var ErrInvalid = errors.New("invalid memory limit")

// Policy is a decided limit: Bytes 0 means none.
type Policy struct {
	Bytes  int64
	Source string
}

// Resolve decides the limit from the flag's value spec: "" or "auto" take
// GOMEMLIMIT when set (the runtime applied it already), else CgroupShare %
// of the cgroup limit found under root (the file system's root, "/"), else
// none; "off" means none whatever the environment; a size (e.g. "160MiB")
// is taken as is. getenv reads the environment.
func Resolve(spec string, getenv func(string) string, root fs.FS) (Policy, error) {
	switch strings.TrimSpace(spec) {
	case "", "auto":
		if v := getenv("GOMEMLIMIT"); v != "" && v != "off" {
			return Policy{Bytes: debug.SetMemoryLimit(-1), Source: FromEnv}, nil
		}
		if n, ok := CgroupLimit(root); ok {
			return Policy{Bytes: int64(n / 100 * CgroupShare), Source: FromCgroup}, nil
		}
		return Policy{Source: FromNone}, nil
	case "off", "none", "0":
		return Policy{Source: FromNone}, nil
	}
	n, err := meta.ParseSize(spec)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %w (a size such as 160MiB, or auto, or off)", ErrInvalid, err)
	}
	if n < MinLimit || n > math.MaxInt64 {
		return Policy{}, fmt.Errorf("%w: %q is below %s, too little for a device", ErrInvalid, spec, meta.HumanSize(MinLimit))
	}
	return Policy{Bytes: int64(n), Source: FromFlag}, nil
}

// Apply sets the process's soft memory limit to p: none lifts any limit
// (GOMEMLIMIT's included).
func Apply(p Policy) {
	if p.Bytes > 0 {
		debug.SetMemoryLimit(p.Bytes)
	} else {
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

// CgroupLimit returns the memory limit of the process's cgroup (v2's
// memory.max, or v1's memory.limit_in_bytes), false when there is none.
func CgroupLimit(root fs.FS) (uint64, bool) {
	b, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			file = "sys/fs/cgroup" + parts[2] + "/memory.max"
		case hasController(parts[1], "memory"):
			file = "sys/fs/cgroup/memory" + parts[2] + "/memory.limit_in_bytes"
		default:
			continue
		}
		if n, ok := readLimit(root, file); ok {
			return n, true
		}
		// In a container the cgroup's path is often not visible under
		// its own name: its files are at the mount's root.
		if n, ok := readLimit(root, strings.Replace(file, parts[2]+"/", "/", 1)); ok {
			return n, true
		}
	}
	return 0, false
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readLimit reads a cgroup memory limit file: "max" or a huge number (v1's
// unlimited is near 2^63) is no limit.
func readLimit(root fs.FS, file string) (uint64, bool) {
	b, err := fs.ReadFile(root, strings.TrimPrefix(strings.ReplaceAll(file, "//", "/"), "/"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n == 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}
