package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/internal/memlimit"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/boltstore"
	"github.com/tinycontainer/tinycontainer/trust"
)

func newDeviceCmd() *cobra.Command {
	var (
		df          deviceFlags
		ff          deviceFleetFlags
		data        string
		listen      string
		owner       string
		insecure    bool
		allowRemote bool
		psk         pskFlags
		verbose     bool
		httpAddr    string
		memLimit    string
	)
	cmd := &cobra.Command{
		Use:   "device [flags]",
		Short: "Run a long-lived device, managed over CoAP, with its state on disk",
		Long: `Device runs until interrupted (SIGTERM or Ctrl-C; a stop that hangs ends
after 20 s, or at once on a second signal, with exit code 1). Its state
(installed images, metadata, tenants, kv data, audit records) lives in
--data and survives restarts and crashes: on start every container comes
back in its last state. A corrupt state file (--data/state.db) is refused
at once with how to recover (docs/getting-started.md).

It accepts only images and commands signed by the owner (--owner) or by a
tenant the owner granted, unless started with --insecure (development).
Management is CoAP on --listen, loopback only unless --allow-remote.

With --http ADDR it also serves, read-only, a dashboard page at /, the JSON
behind it under /api/ and Prometheus metrics at /metrics (loopback only
unless --allow-remote).

--memory-limit sets the soft memory limit the Go runtime collects garbage
to stay under, so the device's memory stays flat instead of following the
collector's sawtooth (docs/device.md). The default, auto,
takes GOMEMLIMIT when set, else 80 % of the process's cgroup memory limit,
else none; off means none.`,
		Example: `  tinycontainer keygen --out owner
  tinycontainer device --data ./state --owner owner.pub
  tinycontainer device --data ./state --owner owner.pub --http 127.0.0.1:8080
  tinycontainer device --data /tmp/dev --insecure --listen 127.0.0.1:5699
  tinycontainer device --data ./state --owner owner.pub --memory-limit 192MiB
  tinycontainer device --data ./state --owner owner.pub --fleet mqtt://127.0.0.1:1883 --id dev-0042 --label site=lab`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			opts, err := df.options()
			if err != nil {
				return err
			}
			mem, err := memlimit.Resolve(memLimit, os.Getenv, os.DirFS("/"))
			if err != nil {
				return usageError{fmt.Errorf("--memory-limit: %w", err)}
			}
			opts.Logger = log
			if err := ff.check(); err != nil {
				return err
			}
			opts.ID = ff.id
			cfg := device.Config{Options: opts, Insecure: insecure}
			if owner != "" {
				if cfg.Owner, err = trust.LoadPublicKey(owner); err != nil {
					return usageError{err}
				}
			} else if !insecure {
				return usagef("--owner PUBFILE is required (or --insecure for development)")
			}
			if err := os.MkdirAll(data, 0o700); err != nil {
				return err
			}
			stopped := make(chan struct{}) // closed once all is closed, the store last
			defer close(stopped)
			st, err := boltstore.Open(data, boltstore.Options{})
			if err != nil {
				return stateError(data, err)
			}
			defer st.Close()
			if r := st.Recovered(); r != "" {
				log.Warn("state recovered from a damaged file: the last write before the damage may be lost",
					"file", filepath.Join(data, boltstore.DBFile), "detail", r)
			}
			cfg.Store = st
			cfg.MQTT = df.mqtt
			cfg.CacheDir = filepath.Join(data, "compiled")
			cfg.LogDir = filepath.Join(data, "logs")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go exitIfStuck(ctx, stopped, log)
			memlimit.Apply(mem)
			mg, err := device.Open(ctx, cfg)
			if err != nil {
				return err
			}
			defer mg.Close(context.Background())
			key, err := psk.load()
			if err != nil {
				return err
			}
			srv, err := coap.Serve(ctx, listen, mg, coap.ServerOptions{AllowRemote: allowRemote, PSK: key, PSKIdentity: psk.identity,
				Errors: func(err error) { log.Debug("coap", "err", err) }})
			if err != nil {
				return err
			}
			defer srv.Close()
			if httpAddr != "" {
				ws, err := serveWeb(ctx, httpAddr, allowRemote, mg, func(err error) { log.Warn("http", "err", err) })
				if err != nil {
					return err
				}
				defer ws.Close()
				log.Info("dashboard ready", "url", ws.URL(), "metrics", ws.URL()+"metrics")
			}
			stopFleet, err := ff.start(mg, log)
			if err != nil {
				return err
			}
			log.Info("device ready", "coap", srv.Addr().String(), "data", data, "containers", len(mg.Device().List()), "insecure", insecure,
				"memory_limit", memLimitText(mem))
			mg.Device().Run(ctx)
			log.Info("device stopping")
			stopFleet()
			return nil
		},
	}
	df.add(cmd)
	ff.add(cmd)
	cmd.Flags().StringVar(&data, "data", "tinycontainer-data", "directory holding the device's state")
	cmd.Flags().StringVar(&listen, "listen", deviceDefault(), "UDP address for CoAP management (default from $"+deviceEnv+" when set, as for the management verbs)")
	cmd.Flags().StringVar(&owner, "owner", "", "the owner's public key file (from keygen)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "accept images and commands without checking their signer (development only)")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow --listen and --http on an address other than loopback")
	cmd.Flags().StringVar(&httpAddr, "http", "", "serve the read-only dashboard and /metrics on this TCP address, e.g. 127.0.0.1:8080")
	cmd.Flags().StringVar(&memLimit, "memory-limit", "auto", "soft memory limit of the device process, e.g. 192MiB; auto: GOMEMLIMIT, else 80 % of the cgroup's limit, else none; off: none")
	psk.add(cmd)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log protocol errors too")
	return cmd
}

// memLimitText is the policy for the device's ready line.
func memLimitText(p memlimit.Policy) string {
	if p.Bytes == 0 {
		return "none"
	}
	return meta.HumanSize(uint64(p.Bytes)) + " (" + p.Source + ")"
}

// stopGrace bounds a device's stop after SIGTERM or Ctrl-C: far more than
// a stop takes on a loaded machine (containers end within their budgets,
// the store has nothing to flush), so only a stop that hangs reaches it.
const stopGrace = 20 * time.Second

// exitIfStuck ends the process when the device has not stopped within
// stopGrace of the signal, or at once on a second signal, so a device
// always obeys SIGTERM. Exiting is safe for its state: every acknowledged
// write to state.db is already durable, as after a crash.
func exitIfStuck(ctx context.Context, stopped <-chan struct{}, log *slog.Logger) {
	select {
	case <-stopped:
		return
	case <-ctx.Done():
	}
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-stopped:
		return
	case <-again:
		log.Error("second signal: exiting without a clean stop (the state on disk is safe)")
	case <-timer.C:
		log.Error("the device did not stop within " + stopGrace.String() + " of the signal: exiting without a clean stop (the state on disk is safe)")
	}
	os.Exit(1)
}

// stateError explains a state directory that cannot be opened and, when
// its database is corrupt, how to recover.
func stateError(dir string, err error) error {
	if !errors.Is(err, store.ErrInvalid) {
		return err
	}
	db := filepath.Join(dir, "state.db")
	return fmt.Errorf(`%w
the device's state in %s is corrupt, so the device does not start (it would lose or misread it).
To recover: keep the damaged file for inspection and start with an empty state,
  mv %s %s.corrupt
then start the device again and reinstall what it ran: tenant add for each grant, deploy for
each image (images and grants are the files you made with pack and tenant grant).
Containers' kv data cannot be recovered from a corrupt file.`, err, dir, db, db)
}
