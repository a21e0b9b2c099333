// Package device is the composition root: it wires the endpoint registry
// and host services, the board, the message bus, the runtimes, the store
// and the scheduler into one device, and manages containers on it.
package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/container"
	"github.com/tinycontainer/tinycontainer/endpoint"
	"github.com/tinycontainer/tinycontainer/endpoint/board"
	"github.com/tinycontainer/tinycontainer/endpoint/clock"
	"github.com/tinycontainer/tinycontainer/endpoint/event"
	"github.com/tinycontainer/tinycontainer/endpoint/kv"
	eplog "github.com/tinycontainer/tinycontainer/endpoint/log"
	epml "github.com/tinycontainer/tinycontainer/endpoint/ml"
	epmsg "github.com/tinycontainer/tinycontainer/endpoint/msg"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/ml/tflite"
	"github.com/tinycontainer/tinycontainer/msg"
	"github.com/tinycontainer/tinycontainer/msg/mqtt"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/runtime/ebpf"
	"github.com/tinycontainer/tinycontainer/runtime/wasm"
	"github.com/tinycontainer/tinycontainer/sched"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/memstore"
)

// Options configure a device. The zero value is a simulated device with the
// default board, one worker, state in memory and a local message bus.
type Options struct {
	Board       *board.File // nil: board.Default(Seed)
	Seed        uint64
	Workers     int           // activations running at once (default 1, like one MCU core)
	Quantum     time.Duration // time slice among equal priorities, 1-10 ms (default 10 ms)
	Window      time.Duration // scheduling window of tenant CPU shares (default 100 ms)
	Order       sched.Order   // scheduling policy (default sched.PriorityRoundRobin)
	Store       store.Store   // nil: in memory
	Bus         *msg.Bus      // nil: a local bus
	Interpreter bool          // guests in interpreters (wazero's, ours for eBPF) instead of compiled to machine code
	MQTT        string        // when set, bridge the bus to this MQTT v5 broker URL (QoS 1)
	// ID names the device: its MQTT messaging client id is tc-{ID}-msg
	// (a random one when ID is empty).
	ID       string
	CacheDir string // when set, compiled code is kept here across restarts
	// LogDir, when set, keeps the containers' retained log lines here
	// across restarts (written every second, bounded like the lines in
	// memory).
	LogDir string
	// TenantLogBytes bounds the memory of one tenant's log lines (0:
	// DefaultTenantLogBytes); every container keeps at least its newest
	// MinLogLines lines whatever the bound.
	TenantLogBytes int
	// LowDiskBytes is the free space of the store's file system below
	// which `info` reports the disk nearly full (0: DefaultLowDiskBytes).
	LowDiskBytes uint64
	Logger       *slog.Logger
	// OnLog, when set, sees every container log line as it is written.
	OnLog func(mgmt.LogLine)
	// OnAudit, when set, sees every audit entry as it is recorded.
	OnAudit func(mgmt.AuditEntry)
	// OnHalt, when set, is told when the scheduler stops a container by
	// itself (fault policy, or a finished `once` container).
	OnHalt func(name string, state container.State, f *runtime.Fault)
	// OnFault, when set, is told of every fault and what the fault policy
	// decided.
	OnFault func(name string, f *runtime.Fault, a sched.Action)
	// OnStart, when set, is told when an activation starts and how long
	// after its release (for measurements; it must be quick).
	OnStart func(name string, late time.Duration)
}

// Device is one running TinyContainer host.
type Device struct {
	opts     Options
	log      *slog.Logger
	start    int64
	reg      *endpoint.Registry
	board    *board.Board
	bus      *msg.Bus
	bridge   *mqtt.Bridge // nil without MQTT
	store    store.Store
	sched    *sched.Scheduler
	runtimes map[runtime.Kind]runtime.Runtime
	models   *tflite.Cache // parsed models of the ml endpoint, per container
	mods     *modCache     // compiled code shared by containers running the same code
	logs     *logBook
	logDisk  *logDisk // nil without Options.LogDir
	audit    *auditLog
	// storageErrs counts the kv calls the store could not do.
	storageErrs storageErrors

	mu         sync.Mutex
	containers map[string]*installed

	ceilMu   sync.RWMutex
	ceilings map[string]*meta.Ceiling // by tenant; see ceilings.go
	// tenantOf maps installed container names to their tenants for the
	// scheduler's callbacks, which must not take mu.
	tenantOf sync.Map
}

type installed struct {
	c   *container.Container
	sub *msg.Subscription
}

// Error classes of device operations are those of mgmt, so every transport
// reports them faithfully.
var (
	ErrNotFound = mgmt.ErrNotFound
	ErrInvalid  = mgmt.ErrInvalid
	ErrConflict = mgmt.ErrConflict
)

// New builds a device. Run starts its scheduler.
func New(ctx context.Context, opts Options) (*Device, error) {
	so := sched.Options{Workers: opts.Workers, Quantum: opts.Quantum, Window: opts.Window, Order: opts.Order}
	if err := so.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	d := &Device{opts: opts, log: opts.Logger, start: runtime.Now(), reg: endpoint.NewRegistry(),
		containers: map[string]*installed{}, ceilings: map[string]*meta.Ceiling{}, logs: newLogBook(logLimits{tenantBytes: opts.TenantLogBytes}), mods: newModCache()}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}

	bf := opts.Board
	if bf == nil {
		bf = board.Default(opts.Seed)
	}
	b, err := board.New(bf)
	if err != nil {
		return nil, err
	}
	d.board = b
	d.store = opts.Store
	if d.store == nil {
		d.store = memstore.New()
	}
	d.bus = opts.Bus
	if d.bus == nil {
		d.bus = msg.NewBus(msg.Options{})
	}
	// What can fail comes before what starts goroutines, and each step
	// undoes the ones before it when a later one fails: a device that is
	// not made leaves nothing running.
	wrt, err := wasm.New(ctx, wasm.Options{Interpreter: opts.Interpreter, CacheDir: opts.CacheDir})
	if err != nil {
		return nil, fmt.Errorf("webassembly runtime: %w", err)
	}
	d.runtimes = map[runtime.Kind]runtime.Runtime{runtime.Wasm: wrt, runtime.EBPF: ebpfRuntime(opts.Interpreter)}
	if opts.MQTT != "" {
		// The bridge connects in the background, so the device starts
		// while the broker is down; it reconnects with backoff, and logs
		// connects and disconnects.
		var id string
		if opts.ID != "" {
			id = "tc-" + opts.ID + "-msg"
		}
		br, err := mqtt.Dial(ctx, opts.MQTT, d.bus, mqtt.Options{ClientID: id, QoS: 1, Background: true, Logger: d.log})
		if err != nil {
			d.closeRuntimes(ctx)
			return nil, fmt.Errorf("%w: mqtt %s: %w", ErrInvalid, opts.MQTT, err)
		}
		d.bridge = br
	}
	d.audit = newAuditLog(d.store, d.log, opts.OnAudit)

	d.reg.Register("log", &eplog.Endpoint{Sink: d})
	d.reg.Register("clock", &clock.Endpoint{Start: d.start})
	d.reg.Register("event", event.Endpoint{})
	d.reg.Register("kv", &kv.Endpoint{Store: d.store, Failed: d.storageFailed})
	d.reg.RegisterFamily("msg/", epmsg.Family(busPublisher{d.bus}))
	d.models = tflite.NewCache(64)
	d.reg.Register("ml", &epml.Endpoint{Cache: d.models})
	b.Register(d.reg)

	so.OnHalt, so.OnFault, so.OnStart = d.onHalt, d.onFault, opts.OnStart
	d.sched = sched.New(so)
	if opts.LogDir != "" {
		ld, err := openLogDisk(opts.LogDir, d.logs, time.Second, func(err error) { d.log.Warn("container logs", "err", err) })
		if err != nil {
			_ = d.Close(ctx)
			return nil, err
		}
		d.logDisk = ld
	}
	return d, nil
}

// Runtime returns the device's runtime for kind, or nil.
func (d *Device) Runtime(kind runtime.Kind) runtime.Runtime { return d.runtimes[kind] }

// Registry is the device's endpoint registry (to add host services).
func (d *Device) Registry() *endpoint.Registry { return d.reg }

// Board is the simulated board.
func (d *Device) Board() *board.Board { return d.board }

// Bus is the message bus.
func (d *Device) Bus() *msg.Bus { return d.bus }

// Watchdog is the scheduler's watchdog.
func (d *Device) Watchdog() *sched.Watchdog { return d.sched.Watchdog() }

// Run schedules containers until ctx ends.
func (d *Device) Run(ctx context.Context) { d.sched.Run(ctx) }

// Close releases every container and runtime.
func (d *Device) Close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, in := range d.containers {
		<-d.sched.Remove(name)
		if in.sub != nil {
			in.sub.Close()
		}
		_ = in.c.Close(ctx)
	}
	clear(d.containers)
	errs := []error{d.closeRuntimes(ctx)}
	if d.bridge != nil {
		errs = append(errs, d.bridge.Close())
	}
	d.audit.close()
	if d.logDisk != nil {
		d.logDisk.close()
	}
	return errors.Join(errs...)
}

func (d *Device) closeRuntimes(ctx context.Context) error {
	var errs []error
	for _, r := range d.runtimes {
		errs = append(errs, r.Close(ctx))
	}
	return errors.Join(errs...)
}

// Line implements the log endpoint's sink.
func (d *Device) Line(container, text string) {
	l := d.logs.add(container, text)
	if d.opts.OnLog != nil {
		d.opts.OnLog(l)
	}
}

// Install compiles code for m and adds the container, stopped. A container
// of the same name must not exist (see Upgrade).
func (d *Device) Install(ctx context.Context, m *meta.Manifest, code []byte) error {
	c, err := d.build(ctx, m, code)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.containers[m.Name]; ok {
		_ = c.Close(ctx)
		return fmt.Errorf("%w: container %q is already installed", ErrConflict, m.Name)
	}
	d.containers[m.Name] = &installed{c: c}
	d.logs.setTenant(m.Name, m.Tenant)
	d.tenantOf.Store(m.Name, m.Tenant)
	return nil
}

func (d *Device) build(ctx context.Context, m *meta.Manifest, code []byte) (*container.Container, error) {
	rt, mod, err := d.compile(ctx, m, code)
	if err != nil {
		return nil, err
	}
	return container.New(m, rt.Kind(), mod, d.reg, d.audit, d.RateCeilings(m.Tenant)...), nil
}

// compile compiles code for m with the runtime m names; every install
// path (build, Precompile) compiles through it.
func (d *Device) compile(ctx context.Context, m *meta.Manifest, code []byte) (runtime.Runtime, runtime.Module, error) {
	rt, ok := d.runtimes[runtime.Kind(m.Runtime)]
	if !ok {
		return nil, nil, fmt.Errorf("%w: runtime %q is not available on this device", ErrInvalid, m.Runtime)
	}
	mod, err := d.mods.compile(ctx, rt, code, runtime.Config{MemoryLimit: m.Limits.Memory, CodeLimit: d.codeLimit(m)})
	if err != nil {
		if hostFailure(err) {
			// Not the code's fault (a full disk under the compilation
			// cache, say): the same image may succeed later.
			return nil, nil, fmt.Errorf("%w: %s: the device could not compile the code: %w", mgmt.ErrUnavailable, m.Name, err)
		}
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrInvalid, m.Name, err)
	}
	return rt, mod, nil
}

// Precompile compiles code for m as Install and Replace would, and keeps
// the result until the returned hold is closed: an Install or Replace of
// the same code and limits meanwhile finds it compiled. Callers that
// serialize installs under a lock of their own compile first, outside
// it; a compile that fails fails here, with Install's error.
func (d *Device) Precompile(ctx context.Context, m *meta.Manifest, code []byte) (io.Closer, error) {
	_, mod, err := d.compile(ctx, m, code)
	if err != nil {
		return nil, err
	}
	return hold{mod}, nil
}

// hold keeps a compiled module in the cache until closed.
type hold struct{ mod runtime.Module }

func (h hold) Close() error { return h.mod.Close(context.Background()) }

// codeLimit is the max code size of m's tenant (SPEC section 5) for
// Compile, which refuses longer code before compiling anything: every
// install path (run, deploy, the fleet) compiles through build.
func (d *Device) codeLimit(m *meta.Manifest) uint64 { return d.MaxCode(m.Tenant) }

// hostFailure reports whether a compile error is the host's (file system,
// memory mapping), not the guest code's.
func hostFailure(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &errno)
}

func (d *Device) get(name string) (*installed, error) {
	in, ok := d.containers[name]
	if !ok {
		return nil, fmt.Errorf("%w: no container %q", ErrNotFound, name)
	}
	return in, nil
}

// Start schedules a stopped or faulted container.
func (d *Device) Start(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.get(name)
	if err != nil {
		return err
	}
	return d.startLocked(in)
}

func (d *Device) startLocked(in *installed) error {
	c := in.c
	if c.State() == container.Running {
		return nil
	}
	if err := c.Move(container.Running); err != nil {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	if err := d.subscribe(in); err != nil {
		_ = c.Move(container.Stopped)
		return err
	}
	return d.sched.Add(c.Name, c)
}

// subscribe connects an event-triggered container to its topics.
func (d *Device) subscribe(in *installed) error {
	s := in.c.Schedule()
	if s.Trigger != meta.Event {
		if in.sub != nil {
			in.sub.Close()
			in.sub = nil
			in.c.SetInbox(nil)
		}
		return nil
	}
	if in.sub != nil {
		return in.sub.SetFilters(s.Topics)
	}
	name := in.c.Name
	sub, err := d.bus.Subscribe(name, s.Topics, 0, func() { d.sched.Release(name) })
	if err != nil {
		return fmt.Errorf("%w: %s: subscribe: %w", ErrInvalid, name, err)
	}
	in.sub = sub
	in.c.SetInbox(inbox{sub})
	return nil
}

// Stop unschedules a container and waits for its running activation to
// end. Its instance is dropped: the next start begins from a fresh one.
func (d *Device) Stop(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.get(name)
	if err != nil {
		return err
	}
	return d.stopLocked(in, container.Stopped)
}

func (d *Device) stopLocked(in *installed, to container.State) error {
	<-d.sched.Remove(in.c.Name)
	if err := in.c.Move(to); err != nil {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	in.c.Reset()
	return nil
}

// Remove stops and deletes a container, its kv data included.
func (d *Device) Remove(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.get(name)
	if err != nil {
		return err
	}
	<-d.sched.Remove(name)
	_ = in.c.Move(container.Removed)
	if in.sub != nil {
		in.sub.Close()
	}
	delete(d.containers, name)
	d.tenantOf.Delete(name)
	d.models.Drop(name)
	d.logs.forget(name)
	d.storageErrs.forget(name)
	_ = d.store.DeleteAll(name)
	return in.c.Close(ctx)
}

// UpdateManifest replaces the metadata of a live container: permissions
// apply at its next endpoint call, the schedule at its next release; it is
// not restarted and keeps its memory. The new version must be higher and
// the name, tenant and runtime unchanged. A new memory limit applies from
// the next fresh instance (code is compiled against its ceiling).
func (d *Device) UpdateManifest(m *meta.Manifest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.get(m.Name)
	if err != nil {
		return err
	}
	old := in.c.Manifest()
	switch {
	case m.Version <= old.Version:
		return fmt.Errorf("%w: %s: version %d is not newer than the installed %d", ErrConflict, m.Name, m.Version, old.Version)
	case m.Tenant != old.Tenant:
		return fmt.Errorf("%w: %s: tenant cannot change (%q -> %q)", ErrInvalid, m.Name, old.Tenant, m.Tenant)
	case m.Runtime != old.Runtime:
		return fmt.Errorf("%w: %s: runtime cannot change without new code", ErrInvalid, m.Name)
	}
	in.c.SetManifest(m)
	if in.c.State() == container.Running {
		if err := d.subscribe(in); err != nil {
			return err
		}
		d.sched.Reschedule(m.Name)
	}
	return nil
}

// onHalt applies the scheduler's decision to the container's state.
func (d *Device) onHalt(name string, a sched.Action, f *runtime.Fault) {
	d.mu.Lock()
	in, ok := d.containers[name]
	d.mu.Unlock()
	if !ok {
		return
	}
	to := container.Stopped
	if a == sched.Fault {
		to = container.Faulted
	}
	if err := in.c.Move(to); err != nil {
		d.log.Warn("state change refused", "container", name, "err", err)
	}
	d.log.Info("container halted", "container", name, "state", to.String(), "fault", f)
	if d.opts.OnHalt != nil {
		d.opts.OnHalt(name, to, f)
	}
}

// SetCPUShare caps what tenant's containers together use to percent % of
// the device's CPU capacity in every scheduling window (0: no cap).
func (d *Device) SetCPUShare(tenant string, percent int) error {
	if err := d.sched.SetShare(tenant, percent); err != nil {
		return fmt.Errorf("%w: tenant %s: %w", ErrInvalid, tenant, err)
	}
	return nil
}

// CPUShare is the CPU share in force for tenant (0: no cap).
func (d *Device) CPUShare(tenant string) int { return d.sched.Share(tenant) }

// Container returns the installed container name.
func (d *Device) Container(name string) (*container.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.get(name)
	if err != nil {
		return nil, err
	}
	return in.c, nil
}

// Status reports one container (SPEC section 6 fields).
func (d *Device) Status(name string) (mgmt.ContainerStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.get(name)
	if err != nil {
		return mgmt.ContainerStatus{}, err
	}
	return d.status(in), nil
}

// List reports every container, by name.
func (d *Device) List() []mgmt.ContainerStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]mgmt.ContainerStatus, 0, len(d.containers))
	for _, in := range d.containers {
		out = append(out, d.status(in))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Info describes the device as a whole: uptime, its runtimes' engines,
// its containers by state, the bus and the broker bridge.
func (d *Device) Info() mgmt.DeviceInfo {
	info := mgmt.DeviceInfo{UptimeS: float64(runtime.Now()-d.start) / 1e9, Containers: map[string]int{}}
	d.mu.Lock()
	for _, in := range d.containers {
		info.Containers[in.c.State().String()]++
	}
	d.mu.Unlock()
	for _, k := range []runtime.Kind{runtime.Wasm, runtime.EBPF} {
		if e, ok := d.runtimes[k].(interface{ Engine() string }); ok {
			info.Runtimes = append(info.Runtimes, mgmt.RuntimeInfo{Kind: string(k), Engine: e.Engine()})
		}
	}
	b := d.bus.Stats()
	info.Bus = mgmt.BusStats{Published: b.Published, Delivered: b.Delivered, Dropped: b.Dropped, Unmatched: b.Unmatched,
		Rejected: b.Rejected, UplinkErrors: b.UplinkErrors, Subscriptions: b.Subscriptions}
	if d.bridge != nil {
		br := d.bridge.Stats()
		info.MQTT = &mgmt.BridgeStats{Connected: br.Connected, Connects: br.Connects, ConnectErrors: br.ConnectErrors,
			Sent: br.Sent, Queued: br.Queued, OutDropped: br.OutDropped, Received: br.Received, InDropped: br.InDropped,
			SubscribeErrors: br.SubscribeErrors, Filters: br.Filters, LastError: br.LastError}
	}
	info.Storage = d.storageInfo()
	info.LogSeq = d.logs.lastSeq()
	info.Memory = memoryInfo()
	n, p50, p99, worst := d.sched.Watchdog().Overshoot()
	info.Watchdog = mgmt.WatchdogStats{Stopped: n, OvershootP50US: uint64(p50.Microseconds()),
		OvershootP99US: uint64(p99.Microseconds()), OvershootMaxUS: uint64(worst.Microseconds())}
	return info
}

// status reports in; d.mu held (in.sub may change under it).
func (d *Device) status(in *installed) mgmt.ContainerStatus {
	c := in.c
	m := c.Manifest()
	st := c.Stats()
	usage, _ := d.store.Usage(c.Name)
	var sub msg.SubStats
	if in.sub != nil {
		sub = in.sub.Stats()
	}
	return mgmt.ContainerStatus{
		Name: c.Name, Tenant: c.Tenant, Runtime: string(c.Kind), State: c.State().String(),
		Version: m.Version, Activations: st.Activations, Faults: st.Faults, LastFault: string(st.LastFault),
		MissedDeadlines: st.MissedDeadlines, EndpointCalls: st.EndpointCalls, DeniedCalls: st.DeniedCalls,
		RateLimitedCalls: st.RateLimited,
		CPUTimeUS:        st.CPUTimeNs / 1000, ThrottledUS: st.ThrottledNs / 1000, Preemptions: st.Preemptions,
		MemoryBytes: st.MemoryBytes, StorageBytes: usage, ExitCode: st.LastExit,
		Priority: m.Schedule.Priority, Trigger: string(m.Schedule.Trigger),
		PeriodUS: uint64(m.Schedule.Period.Microseconds()), BudgetUS: uint64(m.Schedule.Budget.Microseconds()),
		MessagesReceived: sub.Received, MessagesDropped: sub.Dropped,
		LogLinesDropped: d.logs.dropped(c.Name), StorageErrors: d.storageErrs.count(c.Name),
	}
}

// Logs returns log lines (container "" for all) with Seq > after.
func (d *Device) Logs(container string, after uint64, max int) []mgmt.LogLine {
	return d.logs.lines(container, after, max)
}

// PruneLogs forgets the retained lines of every container keep refuses
// (lines kept on disk of containers removed while the device was down).
func (d *Device) PruneLogs(keep func(container string) bool) { d.logs.prune(keep) }

// WatchLogs streams new log lines until ctx ends.
func (d *Device) WatchLogs(ctx context.Context, container string, after uint64) <-chan mgmt.LogLine {
	return d.logs.watch(ctx, container, after)
}

// Audit returns the newest audit entries, oldest first.
func (d *Device) Audit(limit int) []mgmt.AuditEntry { return d.audit.entries(limit) }

// busPublisher maps bus errors to the errno a guest sees.
type busPublisher struct{ bus *msg.Bus }

func (p busPublisher) Publish(from, topic string, payload []byte) error {
	err := p.bus.Publish(from, topic, payload)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, msg.ErrTooLarge):
		return fmt.Errorf("%w: %w", abi.EMSGSIZE, err)
	case errors.Is(err, msg.ErrInvalidTopic):
		return fmt.Errorf("%w: %w", abi.EINVAL, err)
	}
	return fmt.Errorf("%w: %w", abi.EAGAIN, err)
}

// inbox adapts a bus subscription to the container's Inbox.
type inbox struct{ sub *msg.Subscription }

func (i inbox) Next() (string, []byte, bool) {
	m, ok := i.sub.Next()
	return m.Topic, m.Payload, ok
}

func (i inbox) Len() int { return i.sub.Len() }

// Replace installs m with code, or upgrades the installed container of
// that name to it: the old one is stopped and removed (its kv data stays),
// the new one is installed stopped.
func (d *Device) Replace(ctx context.Context, m *meta.Manifest, code []byte) error {
	c, err := d.build(ctx, m, code)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.containers[m.Name]; ok {
		<-d.sched.Remove(m.Name)
		_ = old.c.Move(container.Removed)
		if old.sub != nil {
			old.sub.Close()
		}
		_ = old.c.Close(ctx)
	}
	d.containers[m.Name] = &installed{c: c}
	d.logs.setTenant(m.Name, m.Tenant)
	d.tenantOf.Store(m.Name, m.Tenant)
	return nil
}

// Restore puts an installed, stopped container in state s (after a device
// restart): running containers are scheduled again, faulted ones stay
// faulted until started.
func (d *Device) Restore(name string, s container.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.get(name)
	if err != nil {
		return err
	}
	switch s {
	case container.Running:
		return d.startLocked(in)
	case container.Faulted:
		if err := in.c.Move(container.Running); err != nil {
			return err
		}
		return in.c.Move(container.Faulted)
	}
	return nil
}

// ebpfRuntime is the eBPF engine: machine code where the platform has a
// compiler, unless interpret asks for the interpreter.
func ebpfRuntime(interpret bool) *ebpf.Runtime {
	if interpret {
		return ebpf.NewInterpreter()
	}
	return ebpf.New()
}
