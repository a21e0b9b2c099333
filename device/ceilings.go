package device

import "github.com/tinycontainer/tinycontainer/meta"

// The tenants' ceilings as the device enforces them at run time (code
// size, CPU share, call rates). The Manager installs them from the
// owner-signed grants; a device without a Manager has none.

// Ceiling returns the ceiling granted to tenant, and false when the tenant
// has none on this device. The ceiling is shared: read it, never modify it.
func (d *Device) Ceiling(tenant string) (*meta.Ceiling, bool) {
	d.ceilMu.RLock()
	defer d.ceilMu.RUnlock()
	c, ok := d.ceilings[tenant]
	return c, ok
}

// MaxCode is the most guest code a container of tenant may have: its
// grant's max code size, or meta.DefaultMaxCode without a grant.
func (d *Device) MaxCode(tenant string) uint64 {
	if c, ok := d.Ceiling(tenant); ok {
		return c.MaxCode
	}
	return meta.DefaultMaxCode
}

// RateCeilings are the rate ceilings of tenant's containers: its grant's
// (meta.Ceiling.Rates), or meta.DefaultRates without a grant.
func (d *Device) RateCeilings(tenant string) []meta.RateCeiling {
	if c, ok := d.Ceiling(tenant); ok {
		return c.Rates()
	}
	return meta.DefaultRates()
}

// setCeiling installs (or replaces) c for its tenant: its CPU share (the
// scheduler throttles the tenant past it) and its rates (from the tenant's
// containers' next endpoint call).
func (d *Device) setCeiling(c *meta.Ceiling) {
	d.ceilMu.Lock()
	d.ceilings[c.Tenant] = c
	d.ceilMu.Unlock()
	if err := d.sched.SetShare(c.Tenant, c.MaxCPU); err != nil { // validated with the grant
		d.log.Warn("CPU share refused", "tenant", c.Tenant, "err", err)
	}
	d.applyCeiling(c.Tenant)
}

// dropCeiling forgets tenant's ceiling (its grant was revoked).
func (d *Device) dropCeiling(tenant string) {
	d.ceilMu.Lock()
	delete(d.ceilings, tenant)
	d.ceilMu.Unlock()
	_ = d.sched.SetShare(tenant, 0)
	d.applyCeiling(tenant)
}

func (d *Device) applyCeiling(tenant string) {
	caps := d.RateCeilings(tenant)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, in := range d.containers {
		if in.c.Tenant == tenant {
			in.c.SetRateCeilings(caps)
		}
	}
}
