// Package sim runs a simulated fleet: many devices in one process, each a
// full managed device (its own store, scheduler and runtimes) with its own
// fleet adapter and broker connection, so tests and users can try fleets
// without hardware and the controller can be measured at scale.
//
// Each device is what `tinycontainer device --fleet` runs, minus CoAP:
// device.Open plus fleet.Start. Guests run in the interpreters by default
// (no machine code per device: compiling the same module for a thousand
// devices would cost more memory than it saves CPU here).
package sim

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/mgmt/fleet"
	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/boltstore"
	"github.com/tinycontainer/tinycontainer/store/memstore"
)

// Options describe a simulated fleet.
type Options struct {
	Devices int               // how many devices
	Broker  string            // broker URL
	Owner   ed25519.PublicKey // the owner every device trusts
	// Dir holds one state directory per device (Dir/ID); "" keeps every
	// device's state in memory.
	Dir string
	// Prefix names the devices Prefix0000, Prefix0001, ... ["sim-"]
	Prefix string
	// First is the index of the first device (to split a fleet over
	// several processes).
	First int
	// Labels are given to every device, besides sim=1 and
	// group=<index mod Groups>.
	Labels map[string]string
	Groups int // [10]
	// User and Password log every device in at the broker.
	User     string
	Password []byte
	// Compile runs guests as machine code instead of interpreting them.
	Compile bool
	// Tick, MinBackoff, MaxBackoff: see fleet.Options.
	Tick, MinBackoff, MaxBackoff time.Duration
	Logger                       *slog.Logger
	Version                      string
}

// Device is one simulated device.
type Device struct {
	ID string

	opts   fleet.Options
	cfg    device.Config
	dir    string
	mu     sync.Mutex
	mg     *device.Manager
	agent  *fleet.Agent
	st     store.Store
	cancel context.CancelFunc
	done   chan struct{}
}

// Fleet is a running simulated fleet.
type Fleet struct {
	devs []*Device
}

// Start starts every device (in parallel, a few at a time). On error the
// devices already started are stopped.
func Start(ctx context.Context, o Options) (*Fleet, error) {
	if o.Devices <= 0 {
		return nil, errors.New("sim: need at least one device")
	}
	if o.Owner == nil {
		return nil, errors.New("sim: need the owner's public key")
	}
	if o.Prefix == "" {
		o.Prefix = "sim-"
	}
	if o.Groups <= 0 {
		o.Groups = 10
	}
	if o.Version == "" {
		o.Version = "sim"
	}
	f := &Fleet{devs: make([]*Device, o.Devices)}
	for i := range f.devs {
		n := o.First + i
		id := fmt.Sprintf("%s%04d", o.Prefix, n)
		labels := maps.Clone(o.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels["sim"] = "1"
		labels["group"] = strconv.Itoa(n % o.Groups)
		d := &Device{ID: id}
		d.opts = fleet.Options{URL: o.Broker, ID: id, Labels: labels, User: o.User, Password: o.Password,
			Version: o.Version, Logger: o.Logger, Tick: o.Tick, MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff}
		d.cfg = device.Config{Owner: o.Owner, Options: device.Options{Interpreter: !o.Compile, Logger: o.Logger, ID: id}}
		if o.Dir != "" {
			d.dir = filepath.Join(o.Dir, id)
		}
		f.devs[i] = d
	}
	var wg sync.WaitGroup
	errs := make([]error, len(f.devs))
	sem := make(chan struct{}, 8)
	for i, d := range f.devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = d.Start(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Devices are the fleet's devices, in order.
func (f *Fleet) Devices() []*Device { return f.devs }

// Close stops every device (each publishes "offline").
func (f *Fleet) Close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, d := range f.devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d.Stop()
		}()
	}
	wg.Wait()
}

// Start starts (or restarts) the device from its state.
func (d *Device) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mg != nil {
		return nil
	}
	var st store.Store
	if d.dir == "" {
		if d.st == nil {
			d.st = memstore.New() // kept across Stop/Start, like a disk
		}
		st = d.st
	} else {
		if err := os.MkdirAll(d.dir, 0o700); err != nil {
			return fmt.Errorf("sim %s: %w", d.ID, err)
		}
		bs, err := boltstore.Open(d.dir, boltstore.Options{})
		if err != nil {
			return fmt.Errorf("sim %s: %w", d.ID, err)
		}
		st = bs
	}
	cfg := d.cfg
	cfg.Store = st
	rctx, cancel := context.WithCancel(context.Background())
	mg, err := device.Open(ctx, cfg)
	if err != nil {
		cancel()
		d.closeStore(st)
		return fmt.Errorf("sim %s: %w", d.ID, err)
	}
	done := make(chan struct{})
	go func() { mg.Device().Run(rctx); close(done) }()
	a, err := fleet.Start(mg, d.opts)
	if err != nil {
		cancel()
		<-done
		mg.Close(context.Background())
		d.closeStore(st)
		return fmt.Errorf("sim %s: %w", d.ID, err)
	}
	d.mg, d.agent, d.cancel, d.done = mg, a, cancel, done
	if d.dir != "" {
		d.st = st
	}
	return nil
}

func (d *Device) closeStore(st store.Store) {
	if d.dir != "" {
		st.Close()
	}
}

// Stop stops the device cleanly (it publishes "offline"); its state stays
// for a later Start.
func (d *Device) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mg == nil {
		return
	}
	d.agent.Close()
	d.cancel()
	<-d.done
	d.mg.Close(context.Background())
	if d.dir != "" {
		d.st.Close()
		d.st = nil
	}
	d.mg, d.agent = nil, nil
}

// Manager is the running device's manager (nil while stopped).
func (d *Device) Manager() *device.Manager {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mg
}

// Agent is the running device's fleet adapter (nil while stopped).
func (d *Device) Agent() *fleet.Agent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.agent
}
