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

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
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
	)
	cmd := &cobra.Command{
		Use:   "device [flags]",
		Short: "Run a long-lived device, managed over CoAP, with its state on disk",
		Long: `Device runs until interrupted. Its state (installed images, metadata,
tenants, kv data, audit records) lives in --data and survives restarts and
crashes: on start every container comes back in its last state.

It accepts only images and commands signed by the owner (--owner) or by a
tenant the owner granted, unless started with --insecure (development).
Management is CoAP on --listen, loopback only unless --allow-remote.

With --http ADDR it also serves, read-only, a dashboard page at /, the JSON
behind it under /api/ and Prometheus metrics at /metrics (loopback only
unless --allow-remote).`,
		Example: `  tinycontainer keygen --out owner
  tinycontainer device --data ./state --owner owner.pub
  tinycontainer device --data ./state --owner owner.pub --http 127.0.0.1:8080
  tinycontainer device --data /tmp/dev --insecure --listen 127.0.0.1:5699
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
			st, err := boltstore.Open(data, boltstore.Options{})
			if err != nil {
				return stateError(data, err)
			}
			defer st.Close()
			cfg.Store = st
			cfg.MQTT = df.mqtt
			cfg.CacheDir = filepath.Join(data, "compiled")
			cfg.LogDir = filepath.Join(data, "logs")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
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
			log.Info("device ready", "coap", srv.Addr().String(), "data", data, "containers", len(mg.Device().List()), "insecure", insecure)
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
	psk.add(cmd)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log protocol errors too")
	return cmd
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
