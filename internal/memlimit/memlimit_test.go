package memlimit

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"
	"testing/fstest"
)

func TestResolve(t *testing.T) {
	v1 := fstest.MapFS{
		"proc/self/cgroup": {Data: []byte("12:pids:/\n4:memory:/box/42\n0::/\n")},
		"sys/fs/cgroup/memory/box/42/memory.limit_in_bytes": {Data: []byte("536870912\n")},
	}
	v1Unlimited := fstest.MapFS{
		"proc/self/cgroup":                           {Data: []byte("4:memory:/box/42\n")},
		"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
	}
	v1AtRoot := fstest.MapFS{ // the cgroup's own files at the mount's root (in a container)
		"proc/self/cgroup":                           {Data: []byte("4:cpu,memory:/box/42\n")},
		"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("1073741824\n")},
	}
	v2 := fstest.MapFS{
		"proc/self/cgroup": {Data: []byte("0::/system.slice/tc.service\n")},
		"sys/fs/cgroup/system.slice/tc.service/memory.max": {Data: []byte("268435456\n")},
	}
	v2Max := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
	}
	noEnv := func(string) string { return "" }
	env := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "100MiB"
		}
		return ""
	}
	prev := debug.SetMemoryLimit(100 << 20) // as the runtime does for GOMEMLIMIT
	defer debug.SetMemoryLimit(prev)
	for _, c := range []struct {
		spec string
		env  func(string) string
		fs   fstest.MapFS
		want Policy
	}{
		{"auto", noEnv, v1, Policy{536870912 / 100 * CgroupShare, FromCgroup}},
		{"", noEnv, v2, Policy{268435456 / 100 * CgroupShare, FromCgroup}},
		{"auto", noEnv, v1AtRoot, Policy{1073741824 / 100 * CgroupShare, FromCgroup}},
		{"auto", noEnv, v1Unlimited, Policy{0, FromNone}},
		{"auto", noEnv, v2Max, Policy{0, FromNone}},
		{"auto", noEnv, fstest.MapFS{}, Policy{0, FromNone}},
		{"auto", env, v1, Policy{100 << 20, FromEnv}},
		{"off", env, v1, Policy{0, FromNone}},
		{"192MiB", env, v1, Policy{192 << 20, FromFlag}},
		{"200MB", noEnv, v2, Policy{200_000_000, FromFlag}},
		{"16MiB", noEnv, v2, Policy{16 << 20, FromFlag}},
	} {
		got, err := Resolve(c.spec, c.env, c.fs)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q): %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
	for _, bad := range []string{"lots", "12XB", "-1", "1MiB", "15MiB", "99999999999GiB"} {
		if _, err := Resolve(bad, noEnv, v1); !errors.Is(err, ErrInvalid) {
			t.Errorf("Resolve(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

func TestApply(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	Apply(Policy{64 << 20, FromFlag})
	if got := debug.SetMemoryLimit(-1); got != 64<<20 {
		t.Fatalf("limit %d after Apply(64 MiB)", got)
	}
	Apply(Policy{0, FromNone})
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit %d after Apply(none)", got)
	}
}
