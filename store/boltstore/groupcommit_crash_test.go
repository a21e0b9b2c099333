//go:build unix

package boltstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const gcCrashEnv = "TC_BOLTSTORE_GC_CRASH_DIR"

// gcWriters write concurrently, so their puts share transactions.
const gcWriters = 32

// TestGroupCommitCrashChild is the writer TestGroupCommitCrash kills: each
// of gcWriters goroutines puts an increasing counter under its own key and
// prints "ack W N" once the put returned (its batch is durable).
func TestGroupCommitCrashChild(t *testing.T) {
	dir := os.Getenv(gcCrashEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestGroupCommitCrash")
	}
	s, err := Open(dir, Options{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var mu sync.Mutex // one line at a time on stdout
	var wg sync.WaitGroup
	for w := range gcWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("w%02d", w)
			var n uint64
			if v, err := s.Get("gc", key); err == nil {
				n, _ = strconv.ParseUint(string(v), 10, 64)
			}
			for {
				n++
				if err := s.Put("gc", key, []byte(strconv.FormatUint(n, 10)), 1<<20); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Printf("ack %d %d\n", w, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestGroupCommitCrash kills concurrent writers with SIGKILL at random
// moments: every put a writer saw acknowledged is on disk after the kill,
// though many shared one transaction and one fsync.
func TestGroupCommitCrash(t *testing.T) {
	if os.Getenv(gcCrashEnv) != "" {
		t.Skip("this is the child")
	}
	dir := t.TempDir()
	acked := make([]uint64, gcWriters)
	rng := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	rounds := 15
	if testing.Short() {
		rounds = 4
	}
	for round := range rounds {
		killAfter := 1 + rng.IntN(400)
		cmd := exec.Command(os.Args[0], "-test.run=^TestGroupCommitCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), gcCrashEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			if errors.Is(err, syscall.ENOEXEC) {
				// qemu-user without binfmt_misc (make test-arm32).
				t.Skipf("cannot start a crash child: %v", err)
			}
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		seen, killed := 0, false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue // the test framework's own lines
			}
			w, _ := strconv.Atoi(f[1])
			n, _ := strconv.ParseUint(f[2], 10, 64)
			if w < 0 || w >= gcWriters {
				t.Fatalf("bad line %q", sc.Text())
			}
			acked[w] = max(acked[w], n)
			if seen++; seen >= killAfter && !killed {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child did not die by SIGKILL: %v\n%s", round, err, stderr.Bytes())
		}
		s, err := Open(dir, Options{LockTimeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		var sum uint64
		for w := range gcWriters {
			key := fmt.Sprintf("w%02d", w)
			v, err := s.Get("gc", key)
			var n uint64
			if err == nil {
				n, err = strconv.ParseUint(string(v), 10, 64)
				sum += uint64(len(key) + len(v))
			}
			if acked[w] > 0 && (err != nil || n < acked[w]) {
				t.Fatalf("round %d: writer %d acknowledged %d, store holds %q (%v)", round, w, acked[w], v, err)
			}
		}
		if u, err := s.Usage("gc"); err != nil || u != sum {
			t.Fatalf("round %d: usage %d (%v), data %d", round, u, err, sum)
		}
		s.Close()
	}
}
