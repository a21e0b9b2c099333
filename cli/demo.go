package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/container"
	"github.com/tinycontainer/tinycontainer/examples"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/sched"
)

func newDemoCmd() *cobra.Command {
	var (
		df       deviceFlags
		dur      time.Duration
		httpAddr string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show a simulated device with two tenants' containers, live rule changes and the watchdog",
		Long: `Demo runs, in this process and with no setup, a simulated device with
containers of two tenants (acme and globex), and prints what happens:
  - acme's thermo reads the temperature, keeps it in kv and publishes it;
    acme's listener is activated by each message and drives led1;
    acme's vibration is an eBPF femto-container watching the accelerometer;
    acme's mlcompare keeps a small int8 model in its own memory and runs it
    both inside WebAssembly and through the ml endpoint (native, on the
    host), checking that the results are equal;
  - globex's blinker toggles led0; globex's snoop tries to read the
    temperature, is denied and audited, until the owner grants it live
    (new metadata, no restart, memory kept), and later revokes it again;
  - globex's runaway never returns: the watchdog stops every activation at
    its budget, the fault policy restarts it, then marks it faulted,
    while the others keep their period;
  - initech's cruncher computes for a few hundred milliseconds at priority
    1, its tenant capped at 20% of the CPU: acme's metronome (priority 6,
    every 20 ms) preempts it and keeps its rhythm, and the cruncher is
    throttled past its tenant's share, neither a fault.
It ends with every container's stats.

With --http ADDR the device also serves its dashboard there (open the
address it prints in a browser): the story takes 30 s unless --for says
otherwise, and the device keeps running and serving until interrupted.`,
		Example: `  tinycontainer demo
  tinycontainer demo --for 6s --seed 42
  tinycontainer demo --http 127.0.0.1:8080`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if httpAddr != "" && !cmd.Flags().Changed("for") {
				dur = demoWebStory
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), &df, dur, httpAddr)
		},
	}
	df.add(cmd)
	cmd.Flags().DurationVar(&dur, "for", 4*time.Second, "how long the demo's story runs")
	cmd.Flags().StringVar(&httpAddr, "http", "", "serve the dashboard on this loopback TCP address, e.g. 127.0.0.1:8080, until interrupted")
	return cmd
}

type demo struct {
	out   io.Writer
	mu    sync.Mutex
	start time.Time
	quiet bool // the story is over: the device runs on without narration
}

func (d *demo) say(who, format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.quiet {
		return
	}
	fmt.Fprintf(d.out, "%6.2fs  %-9s %s\n", time.Since(d.start).Seconds(), who, fmt.Sprintf(format, a...))
}

func loadExample(name string) (*meta.Manifest, []byte, error) {
	mb, err := fs.ReadFile(examples.FS, path.Join(name, name+".yaml"))
	if err != nil {
		return nil, nil, err
	}
	m, err := meta.Parse(mb)
	if err != nil {
		return nil, nil, fmt.Errorf("example %s: %w", name, err)
	}
	code, err := fs.ReadFile(examples.FS, path.Join(name, m.Code))
	if err != nil {
		return nil, nil, err
	}
	return m, code, nil
}

// demoWebStory is the story's length with --http: time to open the page.
const demoWebStory = 30 * time.Second

func runDemo(ctx context.Context, out io.Writer, df *deviceFlags, dur time.Duration, httpAddr string) error {
	dm := &demo{out: out, start: time.Now()}
	opts, err := df.options()
	if err != nil {
		return err
	}
	opts.OnLog = func(l mgmt.LogLine) { dm.say(l.Container, "%s", l.Text) }
	opts.OnAudit = func(e mgmt.AuditEntry) {
		dm.say("AUDIT", "%s (tenant %s) denied %s on %s: %s", e.Container, e.Tenant, e.Op, e.Endpoint, e.Reason)
	}
	opts.OnFault = func(name string, f *runtime.Fault, a sched.Action) {
		what := map[sched.Action]string{sched.Continue: "restart from a fresh instance", sched.Stop: "stop", sched.Fault: "give up"}[a]
		dm.say("WATCHDOG", "%s: %s fault (%v); policy: %s", name, f.Kind, f.Err, what)
	}
	opts.OnHalt = func(name string, s container.State, _ *runtime.Fault) {
		dm.say("SCHED", "%s is now %s; the others keep their period", name, s)
	}
	d, err := newDevice(ctx, df, opts)
	if err != nil {
		return err
	}
	defer d.Close(context.Background())

	// With --http the device runs until interrupted, the story for dur.
	runCtx := ctx
	if httpAddr != "" {
		var stop context.CancelFunc
		runCtx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		ws, err := serveWeb(runCtx, httpAddr, false, d.Reader(), nil)
		if err != nil {
			return err
		}
		defer ws.Close()
		fmt.Fprintf(out, "Dashboard: %s (open it in a browser; serving until interrupted)\n\n", ws.URL())
	}

	fmt.Fprintln(out, "TinyContainer demo: one simulated device, tenants acme and globex.")
	fmt.Fprintln(out, "Every endpoint call is checked against the metadata in force; time runs from device start.")
	fmt.Fprintln(out)
	names := []string{"thermo", "listener", "vibration", "mlcompare", "blinker", "snoop", "runaway", "metronome", "cruncher"}
	const cappedTenant, cappedShare = "initech", 20
	if err := d.SetCPUShare(cappedTenant, cappedShare); err != nil {
		return err
	}
	dm.say("OWNER", "caps tenant %s at %d%% of the CPU (its grant's max-cpu)", cappedTenant, cappedShare)
	snoop := (*meta.Manifest)(nil)
	for _, n := range names {
		m, code, err := loadExample(n)
		if err != nil {
			return err
		}
		if n == "snoop" {
			snoop = m
		}
		if err := d.Install(ctx, m, code); err != nil {
			return err
		}
		if err := d.Start(n); err != nil {
			return err
		}
		when := fmt.Sprintf("every %v", m.Schedule.Period)
		if m.Schedule.Trigger == meta.Event {
			when = fmt.Sprintf("on each message on %v", m.Schedule.Topics)
		}
		dm.say("DEVICE", "started %s (tenant %s, %s, %s, budget %v, priority %d)", n, m.Tenant, m.Runtime,
			when, m.Schedule.Budget, m.Schedule.Priority)
	}

	ctx, cancel := context.WithTimeout(runCtx, dur)
	defer cancel()
	schedCtx := ctx
	if httpAddr != "" {
		schedCtx = runCtx
	}
	done := make(chan struct{})
	go func() { d.Run(schedCtx); close(done) }()

	// The owner changes snoop's rulebook twice while it runs.
	grant := snoop.Clone()
	grant.Version = 2
	grant.Endpoints = append(grant.Endpoints, meta.EndpointRule{Name: "sensor/temperature", Ops: abi.OpSetOf(abi.OpRead)})
	revoke := snoop.Clone()
	revoke.Version = 3
	steps := []struct {
		at   time.Duration
		m    *meta.Manifest
		what string
	}{
		{dur * 3 / 10, grant, "grants snoop sensor/temperature:read (metadata v2, live: no restart, memory kept)"},
		{dur * 6 / 10, revoke, "revokes it again (metadata v3): denied from the very next call"},
	}
	for _, s := range steps {
		select {
		case <-time.After(time.Until(dm.start.Add(s.at))):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if err := d.UpdateManifest(s.m); err != nil {
			return err
		}
		dm.say("OWNER", "%s", s.what)
	}
	<-ctx.Done()
	if httpAddr == "" {
		<-done
	}
	dm.mu.Lock()
	dm.quiet = true
	dm.mu.Unlock()

	fmt.Fprintln(out)
	fmt.Fprintf(out, "After %v:\n", dur)
	printTable(out, d.List())
	if mt, err := d.Status("metronome"); err == nil {
		cr, _ := d.Status("cruncher")
		fmt.Fprintf(out, "\nScheduler: metronome (priority %d) kept %d of %d periods while cruncher (priority %d) computed %d batches,\n"+
			"preempted %d times, and waited %v throttled by its tenant's %d%% share.\n",
			mt.Priority, mt.Activations, mt.Activations+mt.MissedDeadlines, cr.Priority, cr.Activations,
			cr.Preemptions, (time.Duration(cr.ThrottledUS) * time.Microsecond).Round(time.Millisecond), cappedShare)
	}
	if n, p50, p99, worst := d.Watchdog().Overshoot(); n > 0 {
		fmt.Fprintf(out, "Watchdog: %d runaway activations stopped; past their budget (CPU time) by p50 %v, p99 %v, worst %v.\n",
			n, p50.Round(time.Microsecond), p99.Round(time.Microsecond), worst.Round(time.Microsecond))
	}
	fmt.Fprintf(out, "Audit log: %d entries; led0=%d led1=%d.\n", len(d.Audit(0)),
		d.Board().Actuator("led0").Value(), d.Board().Actuator("led1").Value())
	if httpAddr != "" {
		fmt.Fprintln(out, "\nThe device keeps running; the dashboard is still served. Interrupt (Ctrl-C) to stop.")
		<-runCtx.Done()
		<-done
	}
	return nil
}
