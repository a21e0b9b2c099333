package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
	"github.com/tinycontainer/tinycontainer/store/boltstore"
	"github.com/tinycontainer/tinycontainer/trust"
)

const defaultDevice = "127.0.0.1:5683"

func newDeviceCmd() *cobra.Command {
	var (
		df          deviceFlags
		data        string
		listen      string
		owner       string
		insecure    bool
		allowRemote bool
		psk         pskFlags
		verbose     bool
	)
	cmd := &cobra.Command{
		Use:   "device [flags]",
		Short: "Run a long-lived device, managed over CoAP, with its state on disk",
		Long: `Device runs until interrupted. Its state (installed images, metadata,
tenants, kv data, audit records) lives in --data and survives restarts and
crashes: on start every container comes back in its last state.

It accepts only images and commands signed by the owner (--owner) or by a
tenant the owner granted, unless started with --insecure (development).
Management is CoAP on --listen, loopback only unless --allow-remote.`,
		Example: `  tinycontainer keygen --out owner
  tinycontainer device --data ./state --owner owner.pub
  tinycontainer device --data /tmp/dev --insecure --listen 127.0.0.1:5699`,
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
				return err
			}
			defer st.Close()
			cfg.Store = st
			cfg.MQTT = df.mqtt
			cfg.CacheDir = filepath.Join(data, "compiled")
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
			log.Info("device ready", "coap", srv.Addr().String(), "data", data, "containers", len(mg.Device().List()), "insecure", insecure)
			mg.Device().Run(ctx)
			log.Info("device stopping")
			return nil
		},
	}
	df.add(cmd)
	cmd.Flags().StringVar(&data, "data", "tinycontainer-data", "directory holding the device's state")
	cmd.Flags().StringVar(&listen, "listen", defaultDevice, "UDP address for CoAP management")
	cmd.Flags().StringVar(&owner, "owner", "", "the owner's public key file (from keygen)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "accept images and commands without checking their signer (development only)")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow --listen on an address other than loopback")
	psk.add(cmd)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log protocol errors too")
	return cmd
}

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "keygen --out NAME",
		Short:   "Write a new Ed25519 key pair as NAME.key and NAME.pub",
		Example: "  tinycontainer keygen --out owner\n  tinycontainer keygen --out acme",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out NAME is required")
			}
			_, priv, err := trust.GenerateKey()
			if err != nil {
				return err
			}
			if err := trust.WriteKeyPair(out, priv); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key and %s.pub (key id %s)\n", out, out, trust.KeyID(priv.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "base name of the key files")
	return cmd
}

func newTenantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Grant tenants their ceilings and install the grants on a device"}
	var (
		ownerKey, tenant, pub, out string
		allow                      []string
		maxMem, maxStore           string
		maxBudget, minPeriod       time.Duration
	)
	grant := &cobra.Command{
		Use:   "grant --owner-key F --tenant T --pub F --allow 'PATTERN:op,op' ... -o F",
		Short: "Write an owner-signed ceiling for a tenant",
		Long: `Grant writes the most a tenant may ever ask for on the owner's devices:
endpoint patterns (MQTT wildcards) with ops, and maximum memory, storage and
budget and minimum period. Metadata beyond it is refused at deploy and at
every live update.`,
		Example: `  tinycontainer tenant grant --owner-key owner.key --tenant acme --pub acme.pub \
    --allow 'sensor/+:read' --allow 'msg/acme/#:publish' --allow 'log:write' \
    --max-memory 128KiB --max-storage 4KiB --max-budget 10ms --min-period 50ms -o acme.grant`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ownerKey == "" || tenant == "" || pub == "" || out == "" {
				return usagef("--owner-key, --tenant, --pub and -o are required")
			}
			c := meta.Ceiling{Tenant: tenant, MaxBudget: maxBudget, MinPeriod: minPeriod}
			for _, a := range allow {
				r, err := meta.ParseAllow(a)
				if err != nil {
					return usageError{err}
				}
				c.Allow = append(c.Allow, r)
			}
			var err error
			if c.MaxMemory, err = meta.ParseSize(maxMem); err != nil {
				return usagef("--max-memory: %v", err)
			}
			if c.MaxStorage, err = meta.ParseSize(maxStore); err != nil {
				return usagef("--max-storage: %v", err)
			}
			if err := c.Validate(); err != nil {
				return usageError{err}
			}
			cj, err := json.Marshal(c)
			if err != nil {
				return err
			}
			okey, err := trust.LoadPrivateKey(ownerKey)
			if err != nil {
				return usageError{err}
			}
			tkey, err := trust.LoadPublicKey(pub)
			if err != nil {
				return usageError{err}
			}
			g, err := trust.SignGrant(cj, tkey, okey)
			if err != nil {
				return err
			}
			return os.WriteFile(out, g, 0o644)
		},
	}
	grant.Flags().StringVar(&ownerKey, "owner-key", "", "the owner's private key file")
	grant.Flags().StringVar(&tenant, "tenant", "", "tenant name")
	grant.Flags().StringVar(&pub, "pub", "", "the tenant's public key file")
	grant.Flags().StringArrayVar(&allow, "allow", nil, "PATTERN:op,op granted (repeatable)")
	grant.Flags().StringVar(&maxMem, "max-memory", "64KiB", "largest limits.memory allowed")
	grant.Flags().StringVar(&maxStore, "max-storage", "4KiB", "largest limits.storage allowed")
	grant.Flags().DurationVar(&maxBudget, "max-budget", 10*time.Millisecond, "largest schedule.budget allowed")
	grant.Flags().DurationVar(&minPeriod, "min-period", 10*time.Millisecond, "smallest schedule.period allowed")
	grant.Flags().StringVarP(&out, "out", "o", "", "output file")

	var mf mgmtFlags
	add := &cobra.Command{
		Use:     "add GRANT --key OWNERKEY",
		Short:   "Install a tenant grant on a device (signed by the owner)",
		Example: "  tinycontainer tenant add acme.grant --key owner.key",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			return mf.exec(cmd, device.VerbTenantAdd, "", g)
		},
	}
	mf.add(add, true)
	cmd.AddCommand(grant, add)
	return cmd
}

func newPackCmd() *cobra.Command {
	var manifest, key, out string
	cmd := &cobra.Command{
		Use:     "pack --manifest F --key F -o F",
		Short:   "Build a signed image from a manifest and its code",
		Example: "  tinycontainer pack --manifest examples/thermo/thermo.yaml --key acme.key -o thermo.img",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if manifest == "" || key == "" || out == "" {
				return usagef("--manifest, --key and -o are required")
			}
			m, code, err := loadManifest(manifest)
			if err != nil {
				return usageError{err}
			}
			priv, err := trust.LoadPrivateKey(key)
			if err != nil {
				return usageError{err}
			}
			mj, err := json.Marshal(m)
			if err != nil {
				return err
			}
			img, err := trust.Pack(mj, code, priv)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, img, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s v%d (%s, %d bytes of code), signed by %s\n",
				out, m.Name, m.Version, m.Runtime, len(code), trust.KeyID(priv.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringVar(&manifest, "manifest", "", "manifest file (YAML or JSON)")
	cmd.Flags().StringVar(&key, "key", "", "the tenant's private key file")
	cmd.Flags().StringVarP(&out, "out", "o", "", "output image file")
	return cmd
}

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "inspect IMAGE",
		Short:   "Show what is in a signed image (without trusting it)",
		Example: "  tinycontainer inspect thermo.img\n  tinycontainer inspect --json thermo.img",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			img, err := trust.OpenImage(b)
			if err != nil {
				return usageError{err}
			}
			m, err := meta.Parse(img.Manifest)
			if err != nil {
				return usageError{fmt.Errorf("image metadata: %w", err)}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, map[string]any{"key_id": img.KeyID, "code_sha256": fmt.Sprintf("%x", img.Digest),
					"code_bytes": len(img.Code), "manifest": m})
			}
			y, err := m.YAML()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "signed by key %s\ncode: %d bytes, sha256 %x\nmetadata:\n%s", img.KeyID, len(img.Code), img.Digest, y)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}

// pskFlags select CoAP over DTLS with a pre-shared key.
type pskFlags struct {
	file     string
	identity string
}

func (p *pskFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.file, "psk-file", "", "DTLS pre-shared key: a file holding at least 16 bytes (CoAP over DTLS instead of plain CoAP)")
	cmd.Flags().StringVar(&p.identity, "psk-identity", "tinycontainer", "DTLS PSK identity")
}

// load reads the key; nil when DTLS is not asked for.
func (p *pskFlags) load() ([]byte, error) {
	if p.file == "" {
		return nil, nil
	}
	key, err := os.ReadFile(p.file)
	if err != nil {
		return nil, usageError{err}
	}
	key = bytes.TrimSpace(key)
	if len(key) < 16 {
		return nil, usagef("--psk-file: the key must be at least 16 bytes, it has %d", len(key))
	}
	return key, nil
}

// mgmtFlags are the flags of commands that talk to a device.
type mgmtFlags struct {
	addr    string
	key     string
	timeout time.Duration
	asJSON  bool
	psk     pskFlags
}

func (f *mgmtFlags) add(cmd *cobra.Command, signed bool) {
	cmd.Flags().StringVar(&f.addr, "device", defaultDevice, "the device's CoAP address")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the device")
	f.psk.add(cmd)
	if signed {
		cmd.Flags().StringVar(&f.key, "key", "", "private key signing the command (the owner's or the tenant's)")
	}
}

func (f *mgmtFlags) addJSON(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "JSON output")
}

func (f *mgmtFlags) dial(ctx context.Context) (*coap.Client, error) {
	key, err := f.psk.load()
	if err != nil {
		return nil, err
	}
	return coap.Dial(ctx, f.addr, coap.ClientOptions{Timeout: f.timeout, PSK: key, PSKIdentity: f.psk.identity})
}

// with runs do with a client of the device, closed afterwards.
func (f *mgmtFlags) with(ctx context.Context, do func(c *coap.Client) error) error {
	c, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return do(c)
}

// exec signs and sends one command, then prints its JSON result.
func (f *mgmtFlags) exec(cmd *cobra.Command, verb, target string, body []byte) error {
	if f.key == "" {
		return usagef("--key is required: state-changing commands are signed")
	}
	priv, err := trust.LoadPrivateKey(f.key)
	if err != nil {
		return usageError{err}
	}
	signed, err := trust.SignCommand(trust.Command{Verb: verb, Target: target, Body: body, Counter: trust.NewCounter()}, priv)
	if err != nil {
		return err
	}
	c, err := f.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Exec(cmd.Context(), signed)
	if err != nil {
		return err
	}
	var v any
	if json.Unmarshal(res, &v) == nil {
		return writeJSON(cmd.OutOrStdout(), v)
	}
	_, err = cmd.OutOrStdout().Write(res)
	return err
}

// usageArgs makes a wrong count of arguments a usage error (exit code 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func newDeployCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     "deploy IMAGE",
		Short:   "Install or upgrade a container from a signed image, and start it",
		Example: "  tinycontainer deploy thermo.img\n  tinycontainer deploy --device 10.0.0.7:5683 thermo.img",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				st, err := c.Deploy(cmd.Context(), img)
				if err != nil {
					return err
				}
				if mf.asJSON {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deployed %s v%d (tenant %s): %s\n", st.Name, st.Version, st.Tenant, st.State)
				return nil
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

func newPsCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     "ps",
		Short:   "List the containers of a device",
		Example: "  tinycontainer ps\n  tinycontainer ps --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				cs, err := c.List(cmd.Context())
				if err != nil {
					return err
				}
				return mf.show(cmd, cs)
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

func newInfoCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show the device as a whole: uptime, engines, containers by state, messaging",
		Long: `Info shows what no single container does: how long the device has run, how
each runtime executes guests, how many containers are in each state, the
message bus's counters and, when the device has --mqtt, the bridge's
(connected, sent, received, dropped, the broker's last error).`,
		Example: "  tinycontainer info\n  tinycontainer info --json --device 10.0.0.7:5683",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				info, err := c.Info(cmd.Context())
				if err != nil {
					return err
				}
				if mf.asJSON {
					return writeJSON(cmd.OutOrStdout(), info)
				}
				printInfo(cmd.OutOrStdout(), info)
				return nil
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

// printInfo writes info as a few aligned lines.
func printInfo(w io.Writer, info mgmt.DeviceInfo) {
	fmt.Fprintf(w, "uptime      %s\n", time.Duration(info.UptimeS*float64(time.Second)).Round(time.Second))
	var rts []string
	for _, r := range info.Runtimes {
		rts = append(rts, r.Kind+" ("+r.Engine+")")
	}
	fmt.Fprintf(w, "runtimes    %s\n", strings.Join(rts, ", "))
	fmt.Fprintf(w, "containers  %d running, %d stopped, %d faulted\n",
		info.Containers["running"], info.Containers["stopped"], info.Containers["faulted"])
	b := info.Bus
	fmt.Fprintf(w, "bus         %d published, %d delivered, %d dropped, %d unmatched, %d rejected, %d subscriptions\n",
		b.Published, b.Delivered, b.Dropped, b.Unmatched, b.Rejected, b.Subscriptions)
	m := info.MQTT
	if m == nil {
		fmt.Fprintln(w, "mqtt        none (messages stay on the device)")
		return
	}
	state := "disconnected"
	if m.Connected {
		state = "connected"
	}
	fmt.Fprintf(w, "mqtt        %s, %d sent, %d queued, %d received, %d dropped out, %d dropped in, %d connects\n",
		state, m.Sent, m.Queued, m.Received, m.OutDropped, m.InDropped, m.Connects)
	if m.LastError != "" {
		fmt.Fprintf(w, "mqtt error  %s\n", m.LastError)
	}
}

// show prints containers as a JSON array (never null) or a table.
func (f *mgmtFlags) show(cmd *cobra.Command, cs []mgmt.ContainerStatus) error {
	if f.asJSON {
		if cs == nil {
			cs = []mgmt.ContainerStatus{}
		}
		return writeJSON(cmd.OutOrStdout(), cs)
	}
	printTable(cmd.OutOrStdout(), cs)
	return nil
}

func newStatusCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     "status NAME",
		Short:   "Show one container",
		Example: "  tinycontainer status thermo --json",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				st, err := c.Status(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if mf.asJSON {
					return writeJSON(cmd.OutOrStdout(), st) // one object, as SPEC's status
				}
				return mf.show(cmd, []mgmt.ContainerStatus{st})
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

func newLifecycleCmd(verb, short string) *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     verb + " NAME --key F",
		Short:   short,
		Example: fmt.Sprintf("  tinycontainer %s thermo --key acme.key", verb),
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return mf.exec(cmd, verb, args[0], nil)
		},
	}
	mf.add(cmd, true)
	return cmd
}

func newMetaCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "meta", Short: "Read or replace a running container's metadata"}
	var gf mgmtFlags
	get := &cobra.Command{
		Use:     "get NAME",
		Short:   "Print the metadata in force (YAML, or JSON with --json)",
		Example: "  tinycontainer meta get thermo",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return gf.with(cmd.Context(), func(c *coap.Client) error {
				b, err := c.Meta(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if gf.asJSON {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
					return err
				}
				m, err := meta.Parse(b)
				if err != nil {
					return err
				}
				y, err := m.YAML()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(y)
				return err
			})
		},
	}
	gf.add(get, false)
	gf.addJSON(get)

	var af mgmtFlags
	var manifest string
	apply := &cobra.Command{
		Use:   "apply NAME --manifest F --key F",
		Short: "Replace the metadata of a running container (signed; higher version)",
		Long: `Apply replaces the rulebook of a running container without restarting it:
permissions take effect at its next endpoint call, schedule changes at its
next activation, and it keeps its memory.`,
		Example: "  tinycontainer meta apply thermo --manifest thermo-v2.yaml --key acme.key",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if manifest == "" {
				return usagef("--manifest is required")
			}
			data, err := os.ReadFile(manifest)
			if err != nil {
				return usageError{err}
			}
			m, err := meta.Parse(data)
			if err != nil {
				return usageError{err}
			}
			mj, err := json.Marshal(m)
			if err != nil {
				return err
			}
			return af.exec(cmd, device.VerbMetaApply, args[0], mj)
		},
	}
	af.add(apply, true)
	apply.Flags().StringVar(&manifest, "manifest", "", "the new manifest (YAML or JSON)")
	cmd.AddCommand(get, apply)
	return cmd
}

// Log lines per request (the protocol allows 1..1000), and requests per
// `logs` run: more pages than the device's ring of 4096 lines holds.
const (
	logPage     = 1000
	maxLogPages = 8
)

func newLogsCmd() *cobra.Command {
	var (
		mf     mgmtFlags
		follow bool
	)
	cmd := &cobra.Command{
		Use:     "logs NAME [-f]",
		Short:   "Print a container's log lines; -f follows new ones (CoAP Observe)",
		Example: "  tinycontainer logs thermo\n  tinycontainer logs -f thermo",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return mf.with(ctx, func(c *coap.Client) error {
				out := cmd.OutOrStdout()
				// Page through what the device keeps; the page bound stops a
				// container that logs faster than we read from holding us here.
				var last uint64
				for range maxLogPages {
					lines, err := c.Logs(ctx, args[0], last, logPage)
					if err != nil {
						return err
					}
					for _, l := range lines {
						fmt.Fprintf(out, "%s %s: %s\n", l.Time.Format(time.RFC3339Nano), l.Container, l.Text)
						last = l.Seq
					}
					if len(lines) < logPage {
						break
					}
				}
				if !follow {
					return nil
				}
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
				ch, err := c.WatchLogs(ctx, args[0], last)
				if err != nil {
					return err
				}
				for l := range ch {
					fmt.Fprintf(out, "%s %s: %s\n", l.Time.Format(time.RFC3339Nano), l.Container, l.Text)
				}
				if ctx.Err() == nil {
					return errors.New("the device ended the log stream")
				}
				return nil
			})
		},
	}
	mf.add(cmd, false)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	return cmd
}

func newStatsCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     "stats [NAME]",
		Short:   "Show container stats (all, or one)",
		Example: "  tinycontainer stats --json\n  tinycontainer stats thermo",
		Args:    usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				var cs []mgmt.ContainerStatus
				var err error
				if len(args) == 1 {
					var st mgmt.ContainerStatus
					st, err = c.ContainerStats(cmd.Context(), args[0])
					cs = []mgmt.ContainerStatus{st}
				} else {
					cs, err = c.Stats(cmd.Context())
				}
				if err != nil {
					return err
				}
				return mf.show(cmd, cs)
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

// maxAuditLimit is the most entries one audit request may ask for.
const maxAuditLimit = 1000

func newAuditCmd() *cobra.Command {
	var (
		mf    mgmtFlags
		limit int
	)
	cmd := &cobra.Command{
		Use:     "audit",
		Short:   "Show the device's audit log (denied calls, refused requests)",
		Example: "  tinycontainer audit --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > maxAuditLimit {
				return usagef("--limit must be 1..%d", maxAuditLimit)
			}
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				es, err := c.Audit(cmd.Context(), limit)
				if err != nil {
					return err
				}
				if mf.asJSON {
					if es == nil {
						es = []mgmt.AuditEntry{}
					}
					return writeJSON(cmd.OutOrStdout(), es)
				}
				for _, e := range es {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s) %s %s: %s\n", e.Time.Format(time.RFC3339), e.Container, e.Tenant, e.Op, e.Endpoint, e.Reason)
				}
				return nil
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	cmd.Flags().IntVar(&limit, "limit", 100, "newest entries to show")
	return cmd
}
