package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/fleet/ctl"
)

func newFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Manage many devices through an MQTT broker",
		Long: `Fleet manages devices started with --fleet through an MQTT v5 broker. All
fleet state lives on the broker as retained messages: this command keeps
none, so any number of controllers may run, any of them shows a rollout,
and fleet resume takes over one whose controller died.

Read verbs (devices, ps, status) subscribe to the retained state and wait
until it has settled: MQTT does not mark the end of the retained messages a
subscription brings, so they wait for a quiet period with no new message
(--settle, 500ms by default).

See docs/fleet.md for the topic tree, the documents and a walkthrough.`,
	}
	cmd.AddCommand(newFleetDevicesCmd(), newFleetPsCmd(), newFleetGrantCmd(), newFleetRolloutCmd(),
		newFleetStatusCmd(), newFleetAbortCmd(), newFleetResumeCmd(), newFleetACLCmd(), newFleetSimulateCmd(),
		newFleetDashboardCmd())
	return cmd
}

// fleetFlags are the broker flags every fleet verb takes.
type fleetFlags struct {
	broker, user, passwordFile string
	settle, timeout            time.Duration
	asJSON                     bool
}

func (ff *fleetFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&ff.broker, "broker", defaultBroker(), "the MQTT v5 broker (mqtt:// or mqtts://; default from $TINYCONTAINER_BROKER)")
	cmd.Flags().StringVar(&ff.user, "user", "", "broker user name")
	cmd.Flags().StringVar(&ff.passwordFile, "password-file", "", "file holding the broker password (from fleet acl: passwords/USER)")
	cmd.Flags().DurationVar(&ff.settle, "settle", 500*time.Millisecond, "quiet period that ends the retained state's arrival")
	cmd.Flags().DurationVar(&ff.timeout, "timeout", 10*time.Second, "how long to wait for the broker")
	cmd.Flags().BoolVar(&ff.asJSON, "json", false, "JSON output")
}

func (ff *fleetFlags) open(ctx context.Context, filters ...string) (*ctl.Fleet, error) {
	opts := ctl.Options{Broker: ff.broker, User: ff.user, Settle: ff.settle, Timeout: ff.timeout}
	if ff.passwordFile != "" {
		b, err := os.ReadFile(ff.passwordFile)
		if err != nil {
			return nil, usageError{err}
		}
		opts.Password = bytes.TrimRight(b, "\r\n")
		if opts.User == "" {
			return nil, usagef("--password-file needs --user")
		}
	}
	f, err := ctl.Open(ctx, opts, filters...)
	return f, fleetErr(err)
}

// with runs do on the fleet, open for the command's run (Ctrl-C cancels
// ctx), then closes it.
func (ff *fleetFlags) with(cmd *cobra.Command, do func(ctx context.Context, f *ctl.Fleet) error, filters ...string) error {
	ctx, stop := interruptible(cmd)
	defer stop()
	f, err := ff.open(ctx, filters...)
	if err != nil {
		return err
	}
	defer f.Close()
	return do(ctx, f)
}

// defaultBroker is $TINYCONTAINER_BROKER, or mosquitto's port on loopback.
func defaultBroker() string {
	if b := os.Getenv("TINYCONTAINER_BROKER"); b != "" {
		return b
	}
	return "mqtt://127.0.0.1:1883"
}

// fleetErr makes the controller's input errors usage errors (exit 2).
func fleetErr(err error) error {
	if err != nil && errors.Is(err, ctl.ErrInput) {
		return usageError{err}
	}
	return err
}

// selFlags choose devices by label.
type selFlags struct {
	selector string
	all      bool
}

func (s *selFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.selector, "selector", "", "K=V[,K=V...]: devices whose labels have all of these")
	cmd.Flags().BoolVar(&s.all, "all", false, "every device")
}

// get returns the selector; required says one of --selector and --all
// must be given (verbs that change devices).
func (s *selFlags) get(required bool) (ctl.Selector, error) {
	switch {
	case s.selector != "" && s.all:
		return ctl.Selector{}, usagef("give --selector or --all, not both")
	case s.selector != "":
		sel, err := ctl.ParseSelector(s.selector)
		return sel, fleetErr(err)
	case s.all || !required:
		return ctl.All(), nil
	}
	return ctl.Selector{}, usagef("choose devices with --selector K=V[,K=V...] or --all")
}

// interruptible is the command's context, cancelled by Ctrl-C or SIGTERM.
func interruptible(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

func newFleetDevicesCmd() *cobra.Command {
	return fleetListCmd("devices [--selector S]",
		"List the fleet's devices: id, labels, online, health (with its problems), last seen, containers, version",
		`  tinycontainer fleet devices
  tinycontainer fleet devices --selector site=lab --json`,
		(*ctl.Fleet).Devices, printDevices)
}

func newFleetPsCmd() *cobra.Command {
	return fleetListCmd("ps [--selector S]",
		"List every container on every matching device, one line each",
		`  tinycontainer fleet ps
  tinycontainer fleet ps --selector floor=2 --json`,
		(*ctl.Fleet).Containers, printFleetPs)
}

// fleetListCmd is a read verb that lists what list gives for the selected
// devices: a table by default, a JSON array (never null) with --json.
func fleetListCmd[T any](use, short, example string, list func(*ctl.Fleet, ctl.Selector) []T, table func(io.Writer, []T)) *cobra.Command {
	var ff fleetFlags
	var sf selFlags
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sel, err := sf.get(false)
			if err != nil {
				return err
			}
			f, err := ff.open(cmd.Context())
			if err != nil {
				return err
			}
			defer f.Close()
			items := list(f, sel)
			if items == nil {
				items = []T{}
			}
			if ff.asJSON {
				return writeJSON(cmd.OutOrStdout(), items)
			}
			table(cmd.OutOrStdout(), items)
			return nil
		},
	}
	ff.add(cmd)
	sf.add(cmd)
	return cmd
}

func newFleetGrantCmd() *cobra.Command {
	var ff fleetFlags
	var sf selFlags
	var key string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "grant GRANT_FILE --key OWNER_KEY (--selector S | --all)",
		Short: "Install a tenant grant (from tenant grant) on the matching devices",
		Long: `Grant publishes the owner-signed tenant grant to every matching device, as a
signed fleet document naming that device with a new sequence number, then
waits (--wait) for the online devices to take it. Offline devices take it
when they come back.`,
		Example: `  tinycontainer tenant grant --owner-key owner.key --tenant acme --pub acme.pub --allow 'log:write' -o acme.grant
  tinycontainer fleet grant acme.grant --key owner.key --all`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := sf.get(true)
			if err != nil {
				return err
			}
			priv, err := requireKey(key, "OWNER_KEY is required: grants are signed by the owner")
			if err != nil {
				return err
			}
			g, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			var res []ctl.GrantResult
			if err := ff.with(cmd, func(ctx context.Context, f *ctl.Fleet) (err error) {
				res, err = f.Grant(ctx, g, priv, sel, wait)
				return fleetErr(err)
			}); err != nil {
				return err
			}
			if ff.asJSON {
				if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				printGrants(cmd.OutOrStdout(), res)
			}
			for _, r := range res {
				if r.State == ctl.GrantRefused {
					return fmt.Errorf("%s refused the grant: %s", r.Device, r.Reason)
				}
			}
			return nil
		},
	}
	ff.add(cmd)
	sf.add(cmd)
	cmd.Flags().StringVar(&key, "key", "", "the owner's private key file")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait for online devices to take the grant")
	return cmd
}

// rolloutFlags are the settings of a rollout.
type rolloutFlags struct {
	canary, wave, maxFailures string
	health, timeout, lease    time.Duration
	id                        string
}

func (rf *rolloutFlags) params() (ctl.Params, error) {
	p := ctl.DefaultParams()
	var err error
	for _, x := range []struct {
		flag, v string
		dst     *ctl.Percent
	}{{"--canary", rf.canary, &p.Canary}, {"--wave", rf.wave, &p.Wave}, {"--max-failures", rf.maxFailures, &p.MaxFailures}} {
		if *x.dst, err = ctl.ParsePercent(x.v); err != nil {
			return p, usagef("%s: %v", x.flag, err)
		}
	}
	p.Health, p.Timeout, p.Lease = rf.health, rf.timeout, rf.lease
	if err := p.Validate(); err != nil {
		return p, usageError{err}
	}
	return p, nil
}

func newFleetRolloutCmd() *cobra.Command {
	var ff fleetFlags
	var sf selFlags
	var rf rolloutFlags
	var key string
	cmd := &cobra.Command{
		Use:   "rollout IMAGE --key TENANT_KEY (--selector S | --all) [--canary N%] [--wave N%] [--max-failures N%] [--health DUR]",
		Short: "Roll an image out in health-gated waves: a canary, then waves",
		Long: `Rollout publishes the image and a signed rollout on the broker, then drives it:
a canary wave (--canary of the devices), then waves (--wave each); each
wave's size rounds up, and is at least one device. A device counts as
updated only once the new version has run --health without a fault.
Failures are counted over the devices attempted so far and checked after
each wave (and as soon as the wave cannot end under the limit): past
--max-failures the rollout aborts, and every device it touched returns to
the version it ran before, authorized by this signed rollout and no
further. Devices offline when their wave ends count as PENDING and do not
hold the rollout up; they catch up when they come back.

It prints the rollout's id first, then progress (a live line on a terminal,
plain lines otherwise, JSON lines with --json), and runs until the rollout
ends: exit 0 when it completed, 1 when it aborted. Interrupted, it leaves
the rollout on the broker: fleet resume ID takes it up (after its lease).`,
		Example: `  tinycontainer fleet rollout thermo-v2.img --key acme.key --all
  tinycontainer fleet rollout thermo-v2.img --key acme.key --selector site=lab \
    --canary 5% --wave 25% --max-failures 10% --health 2s`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := sf.get(true)
			if err != nil {
				return err
			}
			p, err := rf.params()
			if err != nil {
				return err
			}
			priv, err := requireKey(key, "TENANT_KEY is required: rollouts are signed by the tenant")
			if err != nil {
				return err
			}
			img, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			return ff.with(cmd, func(ctx context.Context, f *ctl.Fleet) error {
				run, err := f.StartRollout(ctx, ctl.RolloutRequest{Image: img, Key: priv, Selector: sel, Params: p, ID: rf.id})
				if err != nil {
					return fleetErr(err)
				}
				pr := newProgress(cmd.OutOrStdout(), ff.asJSON)
				pr.started(run)
				return driveOut(ctx, run, pr)
			})
		},
	}
	ff.add(cmd)
	sf.add(cmd)
	rf.add(cmd)
	cmd.Flags().StringVar(&key, "key", "", "the tenant's private key file (the one that signed the image)")
	cmd.Flags().StringVar(&rf.id, "id", "", "the rollout's id (default CONTAINER-vVERSION-RANDOM)")
	return cmd
}

func (rf *rolloutFlags) add(cmd *cobra.Command) {
	d := ctl.DefaultParams()
	cmd.Flags().StringVar(&rf.canary, "canary", d.Canary.String(), "share of the devices in the canary wave")
	cmd.Flags().StringVar(&rf.wave, "wave", d.Wave.String(), "share of the devices in each later wave")
	cmd.Flags().StringVar(&rf.maxFailures, "max-failures", d.MaxFailures.String(), "share of the devices attempted that may fail before the rollout aborts")
	cmd.Flags().DurationVar(&rf.health, "health", d.Health, "how long a new version must run without a fault to count as updated")
	cmd.Flags().DurationVar(&rf.timeout, "device-timeout", d.Timeout, "an online device neither healthy nor failed this long after its wave started counts as TIMED_OUT")
	cmd.Flags().DurationVar(&rf.lease, "lease", d.Lease, "how long this controller's claim on the rollout lasts unrenewed")
}

// driveOut drives a rollout to its end, printing its progress, and maps
// the outcome to the exit code.
func driveOut(ctx context.Context, run *ctl.Run, pr *progress) error {
	state, err := run.Drive(ctx, pr.event)
	pr.done()
	switch {
	case errors.Is(err, ctl.ErrLease):
		return err
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("interrupted: rollout %s goes on without a driver; take it up with: tinycontainer fleet resume %s --key KEY", run.ID(), run.ID())
	case err != nil:
		return err
	case state == ctl.RolloutAborted:
		return fmt.Errorf("rollout %s aborted: %s", run.ID(), run.Rollout().Reason)
	}
	return nil
}

func newFleetStatusCmd() *cobra.Command {
	var ff fleetFlags
	var tenant, pub string
	cmd := &cobra.Command{
		Use:   "status ROLLOUT",
		Short: "Show a rollout's progress, per wave and per device",
		Long: `Status reads a rollout from the broker and shows its state, its waves and each
device's job, with what the device reports now: a device PENDING when its
wave ended shows SUCCEEDED once it has caught up. With --pub the rollout
must be signed by that tenant key; without, the broker's ACL vouches for
it.`,
		Example: `  tinycontainer fleet status thermo-v2-3fa9c1
  tinycontainer fleet status thermo-v2-3fa9c1 --pub acme.pub --json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pk []byte
			if pub != "" {
				k, err := loadPub(pub)
				if err != nil {
					return err
				}
				pk = k
			}
			f, err := ff.open(cmd.Context(), ctl.RolloutFilter(tenant))
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Rollout(args[0], tenant, pk)
			if err != nil {
				return fleetErr(err)
			}
			if ff.asJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			printRolloutStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	ff.add(cmd)
	cmd.Flags().StringVar(&tenant, "tenant", "", "the rollout's tenant (needed only when two tenants use the same id)")
	cmd.Flags().StringVar(&pub, "pub", "", "the tenant's public key file: check the rollout's signatures")
	return cmd
}

func newFleetAbortCmd() *cobra.Command {
	return fleetTakeoverCmd(&cobra.Command{
		Use:   "abort ROLLOUT --key TENANT_KEY",
		Short: "Abort a rollout and return its devices to the versions they ran before",
		Long: `Abort takes the rollout over at once (the controller driving it sees the
higher lease term and stops), cancels the waves not started and returns
every device the rollout touched to the version it ran before. It runs
until the devices online are back; exit 0 once the rollout is ABORTED.`,
		Example: "  tinycontainer fleet abort thermo-v2-3fa9c1 --key acme.key",
	}, func(ctx context.Context, f *ctl.Fleet, t takeover) (*ctl.Run, error) {
		return f.AbortRollout(ctx, t.id, t.tenant, t.key, t.lease, "aborted by "+f.ClientID())
	}, func(run *ctl.Run, err error) error {
		if err != nil && run.Rollout().State != ctl.RolloutAborted {
			return err
		}
		if st := run.Rollout().State; st != ctl.RolloutAborted {
			return fmt.Errorf("rollout %s had already ended: %s", run.ID(), st)
		}
		return nil
	})
}

func newFleetResumeCmd() *cobra.Command {
	return fleetTakeoverCmd(&cobra.Command{
		Use:   "resume ROLLOUT --key TENANT_KEY",
		Short: "Take over a rollout whose controller died and drive it to its end",
		Long: `Resume reads the rollout from the broker. If its lease is still live it waits
until it has seen no renewal for the lease's duration (counted on this
machine's clock): a renewal means the controller driving it is alive, and
resume fails. Then it claims the rollout with the next lease term, does
again what the previous controller may have decided without publishing it,
and drives the rollout like fleet rollout does (exit 0 complete, 1 aborted).`,
		Example: "  tinycontainer fleet resume thermo-v2-3fa9c1 --key acme.key",
	}, func(ctx context.Context, f *ctl.Fleet, t takeover) (*ctl.Run, error) {
		return f.ResumeRollout(ctx, t.id, t.tenant, t.key, t.lease)
	}, func(_ *ctl.Run, err error) error { return err })
}

// takeover is what abort and resume are asked: the rollout, its tenant,
// the tenant's key and this controller's lease.
type takeover struct {
	id, tenant string
	key        ed25519.PrivateKey
	lease      time.Duration
}

// fleetTakeoverCmd completes cmd as a verb that takes a rollout over
// (take), drives it to its end with progress, and judges the end (done).
func fleetTakeoverCmd(cmd *cobra.Command, take func(context.Context, *ctl.Fleet, takeover) (*ctl.Run, error),
	done func(*ctl.Run, error) error) *cobra.Command {
	var ff fleetFlags
	var t takeover
	var keyFile string
	cmd.Args = usageArgs(cobra.ExactArgs(1))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key, err := requireKey(keyFile, "TENANT_KEY is required: the rollout is re-signed by its tenant")
		if err != nil {
			return err
		}
		t.id, t.key = args[0], key
		return ff.with(cmd, func(ctx context.Context, f *ctl.Fleet) error {
			run, err := take(ctx, f, t)
			if err != nil {
				return fleetErr(err)
			}
			pr := newProgress(cmd.OutOrStdout(), ff.asJSON)
			pr.resumed(run)
			return done(run, driveOut(ctx, run, pr))
		})
	}
	ff.add(cmd)
	cmd.Flags().StringVar(&t.tenant, "tenant", "", "the rollout's tenant (needed only when two tenants use the same id)")
	cmd.Flags().StringVar(&keyFile, "key", "", "the tenant's private key file")
	cmd.Flags().DurationVar(&t.lease, "lease", 0, "this controller's lease (default: the rollout's default, 15s)")
	return cmd
}
