package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/container"
	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/endpoint/board"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/trust"
)

type deviceFlags struct {
	board       string
	seed        uint64
	workers     int
	interpreter bool
	mqtt        string
}

func (f *deviceFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.board, "board", "", "board file (JSON) describing the simulated sensors and actuators")
	cmd.Flags().Uint64Var(&f.seed, "seed", 1, "seed of the simulated board's readings")
	cmd.Flags().IntVar(&f.workers, "workers", 1, "activations that may run at once (cores)")
	cmd.Flags().BoolVar(&f.interpreter, "interpreter", false, "run guests (WebAssembly and eBPF) in interpreters instead of compiling them to machine code")
	cmd.Flags().StringVar(&f.mqtt, "mqtt", "", "connect messaging to an MQTT v5 broker, e.g. mqtt://127.0.0.1:1883")
}

func (f *deviceFlags) options() (device.Options, error) {
	o := device.Options{Seed: f.seed, Workers: f.workers, Interpreter: f.interpreter}
	if f.board != "" {
		b, err := board.Load(f.board)
		if err != nil {
			return o, usageError{err}
		}
		o.Board = b
	}
	return o, nil
}

func newRunCmd() *cobra.Command {
	var (
		df       deviceFlags
		dur      time.Duration
		stats    string
		insecure bool
		trusted  []string
	)
	cmd := &cobra.Command{
		Use:   "run [flags] MANIFEST_OR_IMAGE...",
		Short: "Run containers in this process on a fresh device, then exit",
		Long: `Run starts a fresh simulated device in this process, installs and starts the
given containers and runs them until --for has passed, every container has
stopped, or the process is interrupted. Every container log line is printed
to stdout as "NAME: TEXT"; so is every fault, as "NAME: [fault] ..." (the
device writes it to the container's log); state changes go to stderr.

Manifests (YAML or JSON, see docs/manifest.md) are unsigned, so they need
--insecure; their code path is relative to the manifest. Signed images (from
pack) run when signed by a key given with --trust, or with --insecure.`,
		Example: `  tinycontainer run --insecure --for 3s examples/thermo/thermo.yaml examples/listener/listener.yaml
  tinycontainer run --insecure --for 2s --stats stats.json --seed 7 examples/blinker/blinker.yaml
  tinycontainer run --trust acme.pub --for 5s thermo.img`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := df.options()
			if err != nil {
				return err
			}
			type item struct {
				m    *meta.Manifest
				code []byte
			}
			var items []item
			keys, err := loadKeys(trusted)
			if err != nil {
				return err
			}
			for _, a := range args {
				m, code, err := loadContainer(a, keys, insecure)
				if err != nil {
					return err
				}
				items = append(items, item{m, code})
			}
			out := cmd.OutOrStdout()
			var mu sync.Mutex
			opts.OnLog = func(l mgmt.LogLine) {
				mu.Lock()
				fmt.Fprintf(out, "%s: %s\n", l.Container, l.Text)
				mu.Unlock()
			}
			errOut := cmd.ErrOrStderr()
			opts.OnHalt = func(name string, s container.State, _ *runtime.Fault) {
				fmt.Fprintf(errOut, "%s: now %s\n", name, s)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := newDevice(ctx, &df, opts)
			if err != nil {
				return err
			}
			defer d.Close(context.Background())
			for _, it := range items {
				if err := d.Install(ctx, it.m, it.code); err != nil {
					return usageError{err}
				}
				if err := d.Start(it.m.Name); err != nil {
					return err
				}
			}
			if dur > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, dur)
				defer cancel()
			}
			runUntilIdle(ctx, d)
			if stats != "" {
				if err := writeStats(stats, d.List()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	df.add(cmd)
	cmd.Flags().DurationVar(&dur, "for", 0, "run this long, then exit (0: until interrupted or every container stopped)")
	cmd.Flags().StringVar(&stats, "stats", "", "write the final stats (JSON array of container objects) to this file")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "accept unsigned manifests and images of any signer (development only)")
	cmd.Flags().StringArrayVar(&trusted, "trust", nil, "public key file whose signed images may run (repeatable)")
	return cmd
}

// runUntilIdle runs the device until ctx ends or no container is running.
func runUntilIdle(ctx context.Context, d *device.Device) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			if !anyRunning(d.List()) {
				cancel()
				<-done
				return
			}
		}
	}
}

func anyRunning(cs []mgmt.ContainerStatus) bool {
	for _, c := range cs {
		if c.State == mgmt.StateRunning {
			return true
		}
	}
	return false
}

func loadKeys(files []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, f := range files {
		k, err := trust.LoadPublicKey(f)
		if err != nil {
			return nil, usageError{err}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// loadContainer reads a signed image (verified against keys unless
// insecure) or, with insecure, a manifest and its code.
func loadContainer(path string, keys []ed25519.PublicKey, insecure bool) (*meta.Manifest, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, usageError{err}
	}
	img, err := trust.OpenImage(data)
	if err != nil {
		if !insecure || !looksLikeText(data) {
			_, err := openImageFile(path, data, "unsigned manifests run only with --insecure (development)")
			return nil, nil, err
		}
		m, code, err := loadManifest(path)
		if err != nil {
			return nil, nil, usageError{err}
		}
		return m, code, nil
	}
	if !insecure {
		verified := false
		for _, k := range keys {
			if img.Verify(k) == nil {
				verified = true
				break
			}
		}
		if !verified {
			return nil, nil, usagef("%s: signed by key %s, which no --trust key matches", path, img.KeyID)
		}
	}
	m, err := meta.Parse(img.Manifest)
	if err != nil {
		return nil, nil, usagef("%s: image metadata: %v", path, err)
	}
	return m, img.Code, nil
}

// loadManifest reads a manifest and the code it names (relative to it).
func loadManifest(path string) (*meta.Manifest, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := meta.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Code == "" {
		return nil, nil, fmt.Errorf("%s: code: the manifest names no code file", path)
	}
	code, err := os.ReadFile(filepath.Join(filepath.Dir(path), m.Code))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: code: %w", path, err)
	}
	return m, code, nil
}

func writeStats(path string, cs []mgmt.ContainerStatus) error {
	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
