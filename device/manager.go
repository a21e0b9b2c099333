package device

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/container"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/trust"
)

// Config configures a managed device.
type Config struct {
	Options
	// Owner is the key that grants tenants their ceilings and may do
	// anything. Required unless Insecure.
	Owner ed25519.PublicKey
	// Insecure accepts images and commands without checking who signed
	// them (development only). They must still be well formed.
	Insecure bool
}

// Manager is a device as managed remotely: it verifies every signed image
// and command, enforces tenant ceilings, rollback and replay protection,
// and keeps the device's state in the store so it survives restarts. It
// implements mgmt.Device.
type Manager struct {
	dev      *Device
	st       store.Store
	owner    ed25519.PublicKey
	ownerID  string
	insecure bool

	mu      sync.Mutex // serializes state-changing requests
	tenants map[string]*tenant
	// fleetManaged: tenants whose containers come from a fleet (their
	// own CoAP requests are refused); see SetFleetManaged.
	fleetManaged map[string]bool
	// recMu orders the writes of container records: persistState runs on
	// the scheduler's goroutines, outside mu.
	recMu sync.Mutex
}

type tenant struct {
	name    string
	key     ed25519.PublicKey
	keyID   string
	ceiling *meta.Ceiling
}

var _ mgmt.Device = (*Manager)(nil)

// ErrDenied is the class of refused requests (signature, replay, ceiling).
var ErrDenied = mgmt.ErrDenied

// Open builds the device and brings back every container from the store in
// its last state.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Owner == nil && !cfg.Insecure {
		return nil, fmt.Errorf("%w: a device needs an owner key, or explicit insecure mode", ErrInvalid)
	}
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: a managed device needs a store", ErrInvalid)
	}
	mg := &Manager{st: cfg.Store, owner: cfg.Owner, insecure: cfg.Insecure, tenants: map[string]*tenant{}}
	if cfg.Owner != nil {
		mg.ownerID = trust.KeyID(cfg.Owner)
	}
	userHalt := cfg.OnHalt
	cfg.OnHalt = func(name string, s container.State, f *runtime.Fault) {
		mg.persistState(name)
		if userHalt != nil {
			userHalt(name, s, f)
		}
	}
	d, err := New(ctx, cfg.Options)
	if err != nil {
		return nil, err
	}
	mg.dev = d
	if err := mg.restore(ctx); err != nil {
		d.Close(ctx)
		return nil, err
	}
	return mg, nil
}

// Device is the managed device.
func (mg *Manager) Device() *Device { return mg.dev }

// Close closes the device (not the store, which the caller owns).
func (mg *Manager) Close(ctx context.Context) error { return mg.dev.Close(ctx) }

func (mg *Manager) restore(ctx context.Context) error {
	ts, err := mg.st.ListTenants()
	if err != nil {
		return fmt.Errorf("load tenants: %w", err)
	}
	for _, t := range ts {
		if _, err := mg.addTenant(t.Grant); err != nil {
			return fmt.Errorf("tenant %s: %w", t.Name, err)
		}
	}
	if as, err := mg.st.ListAudit(auditRing); err == nil {
		for _, a := range as {
			mg.dev.audit.remember(mgmt.AuditEntry(a))
		}
	}
	cs, err := mg.st.ListContainers()
	if err != nil {
		return fmt.Errorf("load containers: %w", err)
	}
	// One container that no longer loads (say, code this build refuses)
	// must not keep the device and the others down: it is left out, with
	// an audit entry, and its record stays for a later build.
	for _, rec := range cs {
		if err := mg.restoreOne(ctx, rec); err != nil {
			mg.dev.log.Error("container not restored", "container", rec.Name, "err", err)
			mg.dev.audit.add(mgmt.AuditEntry{Time: time.Now(), Container: rec.Name, Tenant: rec.Tenant,
				Endpoint: "mgmt", Op: "restore", Reason: err.Error()})
		}
	}
	mg.dev.PruneLogs(func(name string) bool {
		_, err := mg.st.GetContainer(name)
		return !errors.Is(err, store.ErrNotFound)
	})
	return nil
}

func (mg *Manager) restoreOne(ctx context.Context, rec store.Container) error {
	m, code, st, err := loadRecord(rec)
	if err != nil {
		return err
	}
	if err := mg.dev.Install(ctx, m, code); err != nil {
		return err
	}
	return mg.dev.Restore(rec.Name, st)
}

// addTenant installs an owner-signed grant and returns the tenant's name.
func (mg *Manager) addTenant(grant []byte) (string, error) {
	if mg.owner == nil {
		return "", fmt.Errorf("%w: tenant grants need a device started with an owner key", ErrDenied)
	}
	g, err := trust.OpenGrant(grant, mg.owner)
	if err != nil {
		return "", fmt.Errorf("%w: grant: %w", ErrDenied, err)
	}
	c, err := meta.ParseCeiling(g.CeilingJSON)
	if err != nil {
		return "", fmt.Errorf("%w: grant: %w", ErrInvalid, err)
	}
	mg.tenants[c.Tenant] = &tenant{name: c.Tenant, key: g.TenantKey, keyID: trust.KeyID(g.TenantKey), ceiling: c}
	mg.dev.setCeiling(c)
	return c.Tenant, nil
}

// identify finds who signed a request from the key id it names and a
// verify function that checks the signature against a key (trust's
// Image.Verify, SignedCommand.Verify): the owner, a tenant, or, on an
// insecure device only, an unverified signer. An unknown key, or a known
// key whose signature does not verify, is refused on a secure device.
// mg.mu held.
func (mg *Manager) identify(keyID string, verify func(ed25519.PublicKey) error) (Signer, error) {
	s, key := Signer{KeyID: keyID}, ed25519.PublicKey(nil)
	if mg.owner != nil && keyID == mg.ownerID {
		s.Owner, key = true, mg.owner
	} else {
		for _, t := range mg.tenants {
			if t.keyID == keyID {
				s.Tenant, key = t.name, t.key
				break
			}
		}
	}
	if key == nil {
		if mg.insecure {
			return Signer{KeyID: keyID, Unverified: true}, nil
		}
		return Signer{}, fmt.Errorf("%w: signed by unknown key %s", ErrDenied, keyID)
	}
	if err := verify(key); err != nil {
		if mg.insecure {
			return Signer{KeyID: keyID, Unverified: true}, nil
		}
		return Signer{}, fmt.Errorf("%w: %w", ErrDenied, err)
	}
	return s, nil
}

// Identify is identify for transports other than CoAP (the fleet): it
// takes the manager's lock.
func (mg *Manager) Identify(keyID string, verify func(ed25519.PublicKey) error) (Signer, error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	return mg.identify(keyID, verify)
}

// state is the device state the authorizer decides on; mg.mu held.
func (mg *Manager) state() State {
	st := State{Insecure: mg.insecure, Ceilings: make(map[string]*meta.Ceiling, len(mg.tenants))}
	for name, t := range mg.tenants {
		st.Ceilings[name] = t.ceiling
	}
	return st
}

// Authorize decides r for s against the device's current state (see the
// function Authorize); r.Installed is filled in from the device when r
// names a container that is installed and leaves it nil.
func (mg *Manager) Authorize(s Signer, r Request) error {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	return mg.authorize(s, r)
}

// authorize is Authorize with mg.mu held.
func (mg *Manager) authorize(s Signer, r Request) error {
	if r.Installed == nil && r.Manifest != nil {
		if cur, err := mg.dev.Container(r.Manifest.Name); err == nil {
			r.Installed = cur.Manifest()
		}
	}
	return Authorize(s, r, mg.state())
}

// Deploy installs or upgrades a container from a signed image and starts it.
//
// The code compiles outside the manager's lock, once the request is
// allowed (an install may take up to the install-time bounds: it holds up
// no other request); the request is checked again, under the lock, before
// the compiled container is installed.
func (mg *Manager) Deploy(ctx context.Context, image []byte) (st mgmt.ContainerStatus, err error) {
	var name, tenantName string
	defer func() { mg.auditRefusal(err, "deploy", name, tenantName) }()
	img, m, err := openDeploy(image)
	if err != nil {
		return st, err
	}
	name, tenantName = m.Name, m.Tenant
	return mg.deploy(ctx, image, img, m, deployRoute{
		gate: func(s Signer) error { return mg.fleetLocked(s, m.Tenant) },
		place: func(ctx context.Context, cur *container.Container, rec store.Container) (bool, error) {
			if cur == nil {
				return true, mg.install(ctx, rec, m, img.Code)
			}
			return true, mg.upgrade(ctx, cur.Manifest().Version, rec, m, img.Code)
		},
	})
}

// openDeploy opens a signed image and parses its manifest, once: the rest
// of a deploy works from these.
func openDeploy(image []byte) (*trust.Image, *meta.Manifest, error) {
	img, err := trust.OpenImage(image)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: image: %w", ErrInvalid, err)
	}
	m, err := meta.Parse(img.Manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: image metadata: %w", ErrInvalid, err)
	}
	return img, m, nil
}

// deployRoute is what sets one way in of a deploy (CoAP, fleet) apart
// from another; the rest of the path is deploy's.
type deployRoute struct {
	// gate refuses a signer this way in does not take (nil: none); mg.mu
	// held.
	gate func(s Signer) error
	// place puts the compiled container in force, stored as rec, given
	// the one installed under its name (nil: none); mg.mu held. stored
	// says rec was stored (otherwise deploy records the container's new
	// running state once started).
	place func(ctx context.Context, cur *container.Container, rec store.Container) (stored bool, err error)
}

// deploy is the path every deploy takes from an opened image (img, its
// manifest m) to a started container: authorize, compile outside mg.mu,
// authorize again under it, place (by route), start.
func (mg *Manager) deploy(ctx context.Context, image []byte, img *trust.Image, m *meta.Manifest, route deployRoute) (mgmt.ContainerStatus, error) {
	verify := verifyOnce(img.Verify)
	allowed := func() error {
		s, err := mg.identify(img.KeyID, verify)
		if err != nil {
			return err
		}
		if route.gate != nil {
			if err := route.gate(s); err != nil {
				return err
			}
		}
		return mg.authorize(s, Request{Verb: VerbDeploy, Tenant: m.Tenant, Manifest: m, CodeSize: len(img.Code)})
	}
	compiled, err := mg.precompile(ctx, m, img.Code, allowed)
	if err != nil {
		return mgmt.ContainerStatus{}, err
	}
	defer compiled.Close()
	mg.mu.Lock()
	defer mg.mu.Unlock()
	if err := allowed(); err != nil {
		return mgmt.ContainerStatus{}, err
	}
	rec := store.Container{Name: m.Name, Tenant: m.Tenant, Version: m.Version, Image: image,
		Manifest: mustJSON(m), State: container.Running.String()}
	cur, _ := mg.dev.Container(m.Name) // nil: none installed
	stored, err := route.place(ctx, cur, rec)
	if err != nil {
		return mgmt.ContainerStatus{}, err
	}
	if err := mg.dev.Start(m.Name); err != nil {
		return mgmt.ContainerStatus{}, err
	}
	if !stored {
		mg.persistState(m.Name)
	}
	return mg.dev.Status(m.Name)
}

// verifyOnce is verify, remembering its answer for the last key: a
// request checked before and after its compile verifies its signature
// once (unless the signer's key changed meanwhile).
func verifyOnce(verify func(ed25519.PublicKey) error) func(ed25519.PublicKey) error {
	var last ed25519.PublicKey
	var lastErr error
	return func(key ed25519.PublicKey) error {
		if last == nil || !last.Equal(key) {
			last, lastErr = key, verify(key)
		}
		return lastErr
	}
}

// precompile compiles code for m, outside mg.mu, once allowed (called
// under mg.mu) says the request may go ahead; the caller closes the hold
// once it has installed the container (or given up).
func (mg *Manager) precompile(ctx context.Context, m *meta.Manifest, code []byte, allowed func() error) (io.Closer, error) {
	mg.mu.Lock()
	err := allowed()
	mg.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return mg.dev.Precompile(ctx, m, code)
}

// install adds a container whose name is not installed. Its version must be
// above the name's floor, which outlives removed containers (see Exec rm).
// The floor is consumed only once the code has compiled, so a broken image
// burns no version.
func (mg *Manager) install(ctx context.Context, rec store.Container, m *meta.Manifest, code []byte) error {
	if err := mg.dev.Install(ctx, m, code); err != nil {
		return err
	}
	if err := mg.st.UseCounter(versionFloor(m.Name), m.Version); err != nil {
		_ = mg.dev.Remove(ctx, m.Name)
		if errors.Is(err, store.ErrReplay) {
			return fmt.Errorf("%w: %s: version %d is not above a version installed here before (rollback refused): %w", ErrConflict, m.Name, m.Version, err)
		}
		return fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	if err := mg.putRecord(rec); err != nil {
		_ = mg.dev.Remove(ctx, m.Name)
		return err
	}
	return nil
}

// upgrade replaces the installed container (version in force: cur) by a
// newer one (replace).
func (mg *Manager) upgrade(ctx context.Context, cur uint64, rec store.Container, m *meta.Manifest, code []byte) error {
	if m.Version <= cur {
		return fmt.Errorf("%w: %s: version %d is not newer than the installed %d", ErrConflict, m.Name, m.Version, cur)
	}
	return mg.replace(ctx, rec, m, code)
}

// replace puts m (stored as rec) in place of the installed container,
// keeping its kv data. When the new record cannot be stored the stored
// version is put back, so the device runs what it would restart.
func (mg *Manager) replace(ctx context.Context, rec store.Container, m *meta.Manifest, code []byte) error {
	old, err := mg.st.GetContainer(m.Name)
	if err != nil {
		return fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	if err := mg.dev.Replace(ctx, m, code); err != nil {
		return err
	}
	if err := mg.putRecord(rec); err != nil {
		if rerr := mg.reinstate(ctx, old); rerr != nil {
			mg.dev.log.Error("stored version not reinstated", "container", m.Name, "err", rerr)
		}
		return err
	}
	return nil
}

// reinstate installs a stored container record in place of the running one.
func (mg *Manager) reinstate(ctx context.Context, rec store.Container) error {
	m, code, st, err := loadRecord(rec)
	if err != nil {
		return err
	}
	if err := mg.dev.Replace(ctx, m, code); err != nil {
		return err
	}
	return mg.dev.Restore(rec.Name, st)
}

// loadRecord decodes what the store keeps of a container.
func loadRecord(rec store.Container) (*meta.Manifest, []byte, container.State, error) {
	img, err := trust.OpenImage(rec.Image)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("container %s: stored image: %w", rec.Name, err)
	}
	m, err := meta.Parse(rec.Manifest)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("container %s: stored metadata: %w", rec.Name, err)
	}
	st, err := container.ParseState(rec.State)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("container %s: %w", rec.Name, err)
	}
	return m, img.Code, st, nil
}

// versionFloor names the store counter holding the highest version ever
// installed under a container name.
func versionFloor(name string) string { return "version/" + name }

// putRecord stores a whole container record. recMu orders it with the
// read-modify-writes of persistState and metaApply.
func (mg *Manager) putRecord(rec store.Container) error {
	mg.recMu.Lock()
	defer mg.recMu.Unlock()
	if err := mg.st.PutContainer(rec); err != nil {
		return fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	return nil
}

// maxAuditReason bounds the reason of a refused request in the audit log;
// parts of it come from unauthenticated input.
const maxAuditReason = 512

// auditRefusal records a management request refused as not allowed (bad
// signer, replay, beyond the ceiling, rollback) so the owner sees attempts;
// malformed requests are not recorded, they say nothing about who tried.
func (mg *Manager) auditRefusal(err error, op, name, tenantName string) {
	if !errors.Is(err, ErrDenied) && !errors.Is(err, ErrConflict) {
		return
	}
	reason := err.Error()
	if len(reason) > maxAuditReason {
		reason = reason[:maxAuditReason]
	}
	mg.dev.audit.add(mgmt.AuditEntry{Time: time.Now(), Container: name, Tenant: tenantName,
		Endpoint: "mgmt", Op: op, Reason: strings.ToValidUTF8(reason, "?")})
}

// Exec runs a signed command.
func (mg *Manager) Exec(ctx context.Context, signed []byte) (res []byte, err error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	sc, err := trust.OpenCommand(signed)
	if err != nil {
		return nil, fmt.Errorf("%w: command: %w", ErrInvalid, err)
	}
	c := sc.Command
	tenantName := ""
	defer func() { mg.auditRefusal(err, c.Verb, c.Target, tenantName) }()
	s, err := mg.identify(sc.KeyID, sc.Verify)
	if err != nil {
		return nil, err
	}
	tenantName = s.Tenant
	if err := mg.st.UseCounter("key/"+sc.KeyID, c.Counter); err != nil {
		return nil, fmt.Errorf("%w: replayed or stale command: %w", ErrDenied, err)
	}
	switch c.Verb {
	case VerbTenantAdd:
		return mg.tenantAdd(s, c.Body)
	case VerbTenantRevoke:
		tenantName = c.Target
		return mg.tenantRevoke(s, c.Target)
	case VerbStart, VerbStop, VerbRemove, VerbMetaApply:
	default:
		return nil, fmt.Errorf("%w: unknown verb %q", ErrInvalid, c.Verb)
	}
	cur, err := mg.dev.Container(c.Target)
	if err != nil {
		return nil, err
	}
	tenantName = cur.Tenant
	r := Request{Verb: c.Verb, Tenant: cur.Tenant, Installed: cur.Manifest()}
	if c.Verb == VerbMetaApply {
		if r.Manifest, err = mg.parseMetaApply(c.Target, c.Body); err != nil {
			return nil, err
		}
		r.Tenant = r.Manifest.Tenant
	}
	if err := mg.fleetLocked(s, r.Tenant); err != nil {
		return nil, err
	}
	if err := mg.authorize(s, r); err != nil {
		return nil, err
	}
	switch c.Verb {
	case VerbStart:
		err = mg.dev.Start(c.Target)
	case VerbStop:
		err = mg.dev.Stop(c.Target)
	case VerbRemove:
		return mg.remove(ctx, c.Target, cur.Manifest().Version)
	case VerbMetaApply:
		err = mg.metaApply(c.Target, r.Manifest)
	}
	if err != nil {
		return nil, err
	}
	if c.Verb != VerbMetaApply {
		mg.persistState(c.Target)
	}
	st, err := mg.dev.Status(c.Target)
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

// AddTenant installs an owner-signed grant for a transport other than CoAP
// (the fleet), which identified s itself (Identify); it returns the
// command's JSON result, as Exec does.
func (mg *Manager) AddTenant(s Signer, grant []byte) ([]byte, error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	return mg.tenantAdd(s, grant)
}

// RevokeTenant is the verb tenant-revoke for a transport other than CoAP.
func (mg *Manager) RevokeTenant(s Signer, name string) ([]byte, error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	return mg.tenantRevoke(s, name)
}

// tenantAdd installs an owner-signed grant; mg.mu held.
func (mg *Manager) tenantAdd(s Signer, grant []byte) ([]byte, error) {
	if err := mg.authorize(s, Request{Verb: VerbTenantAdd}); err != nil {
		return nil, err
	}
	name, err := mg.addTenant(grant)
	if err != nil {
		return nil, err
	}
	if err := mg.st.PutTenant(store.Tenant{Name: name, Grant: grant}); err != nil {
		return nil, fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	return json.Marshal(map[string]string{"tenant": name, "key": mg.tenants[name].keyID})
}

// tenantRevoke revokes a tenant's grant (owner only; mg.mu held): its key
// signs nothing more, its ceiling is gone, and its containers are stopped
// (the owner may still remove them, or start them again).
func (mg *Manager) tenantRevoke(s Signer, name string) ([]byte, error) {
	if err := mg.authorize(s, Request{Verb: VerbTenantRevoke, Tenant: name}); err != nil {
		return nil, err
	}
	if _, ok := mg.tenants[name]; !ok {
		return nil, fmt.Errorf("%w: no tenant %q on this device", ErrNotFound, name)
	}
	// The containers stop first, then the grant goes: should the device
	// stop in between, the tenant is still there and the owner revokes
	// again; never does a restart bring back running containers of a
	// tenant without a grant.
	var stopped []string
	for _, st := range mg.dev.List() {
		if st.Tenant != name || st.State == mgmt.StateStopped {
			continue
		}
		if err := mg.dev.Stop(st.Name); err != nil {
			return nil, fmt.Errorf("stop %s of revoked tenant %s: %w", st.Name, name, err)
		}
		mg.persistState(st.Name)
		stopped = append(stopped, st.Name)
	}
	if err := mg.st.DeleteTenant(name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	delete(mg.tenants, name)
	mg.dev.dropCeiling(name)
	if stopped == nil {
		stopped = []string{}
	}
	return json.Marshal(map[string]any{"revoked": name, "stopped": stopped})
}

// Tenants implements mgmt.Device.
func (mg *Manager) Tenants(context.Context) ([]mgmt.TenantInfo, error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	count := map[string]int{}
	for _, st := range mg.dev.List() {
		count[st.Tenant]++
	}
	out := make([]mgmt.TenantInfo, 0, len(mg.tenants))
	for name, t := range mg.tenants {
		cj, err := json.Marshal(t.ceiling)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", name, err)
		}
		out = append(out, mgmt.TenantInfo{Name: name, Key: t.keyID, Containers: count[name], Ceiling: cj})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// remove deletes a container and its kv data. The version in force becomes
// the floor of the name first, so the name cannot be installed again at or
// below it (rollback after rm).
func (mg *Manager) remove(ctx context.Context, name string, version uint64) ([]byte, error) {
	if err := mg.st.UseCounter(versionFloor(name), version); err != nil && !errors.Is(err, store.ErrReplay) {
		return nil, fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	if err := mg.dev.Remove(ctx, name); err != nil {
		return nil, err
	}
	mg.recMu.Lock()
	err := mg.st.DeleteContainer(name)
	mg.recMu.Unlock()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	return json.Marshal(map[string]string{"removed": name})
}

// parseMetaApply reads the metadata of a meta apply on container name.
func (mg *Manager) parseMetaApply(name string, manifestJSON []byte) (*meta.Manifest, error) {
	m, err := meta.Parse(manifestJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if m.Name != name {
		return nil, fmt.Errorf("%w: metadata is for %q, not %q", ErrInvalid, m.Name, name)
	}
	return m, nil
}

// metaApply replaces the metadata of a live container (signed update,
// authorized).
func (mg *Manager) metaApply(name string, m *meta.Manifest) error {
	if err := mg.dev.UpdateManifest(m); err != nil {
		return err
	}
	mg.recMu.Lock()
	defer mg.recMu.Unlock()
	rec, err := mg.st.GetContainer(name)
	if err != nil {
		return fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	rec.Manifest, rec.Version = mustJSON(m), m.Version
	if err := mg.st.PutContainer(rec); err != nil {
		return fmt.Errorf("%w: store: %w", mgmt.ErrUnavailable, err)
	}
	return nil
}

// persistState records the state a container is in now. It reads the
// state under recMu rather than taking it from the caller: a container
// started by a request can fault on the scheduler's goroutine before the
// request records "running", and a state read before the lock would then
// overwrite the fault's record (the halt's own write comes first). Read
// under the lock, whichever write comes last carries the latest state,
// since a halt moves the state before it asks for its write.
func (mg *Manager) persistState(name string) {
	mg.recMu.Lock()
	defer mg.recMu.Unlock()
	c, err := mg.dev.Container(name)
	if err != nil {
		return // removed meanwhile: nothing to record
	}
	rec, err := mg.st.GetContainer(name)
	if err != nil {
		return
	}
	rec.State = c.State().String()
	if err := mg.st.PutContainer(rec); err != nil {
		mg.dev.log.Warn("container state not persisted", "container", name, "err", err)
	}
}

func mustJSON(m *meta.Manifest) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("a validated manifest must marshal: %v", err))
	}
	return b
}

// List implements mgmt.Device.
func (mg *Manager) List(context.Context) ([]mgmt.ContainerStatus, error) { return mg.dev.List(), nil }

// Info describes the device as a whole.
func (mg *Manager) Info(context.Context) (mgmt.DeviceInfo, error) { return mg.dev.Info(), nil }

// Status implements mgmt.Device.
func (mg *Manager) Status(_ context.Context, name string) (mgmt.ContainerStatus, error) {
	return mg.dev.Status(name)
}

// Meta implements mgmt.Device.
func (mg *Manager) Meta(_ context.Context, name string) ([]byte, error) {
	c, err := mg.dev.Container(name)
	if err != nil {
		return nil, err
	}
	return mustJSON(c.Manifest()), nil
}

// Logs implements mgmt.Device.
func (mg *Manager) Logs(_ context.Context, name string, after uint64, max int) ([]mgmt.LogLine, error) {
	if name != "" {
		if _, err := mg.dev.Container(name); err != nil {
			return nil, err
		}
	}
	return mg.dev.Logs(name, after, max), nil
}

// WatchLogs implements mgmt.Device.
func (mg *Manager) WatchLogs(ctx context.Context, name string, after uint64) (<-chan mgmt.LogLine, error) {
	if name != "" {
		if _, err := mg.dev.Container(name); err != nil {
			return nil, err
		}
	}
	return mg.dev.WatchLogs(ctx, name, after), nil
}

// Audit implements mgmt.Device.
func (mg *Manager) Audit(_ context.Context, limit int) ([]mgmt.AuditEntry, error) {
	return mg.dev.Audit(limit), nil
}
