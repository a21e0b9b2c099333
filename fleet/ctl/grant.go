package ctl

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// GrantResult is where one device stands with a grant `fleet grant` sent.
type GrantResult struct {
	Device string `json:"device"`
	Tenant string `json:"tenant"`
	Seq    uint64 `json:"seq"`
	State  string `json:"state"` // accepted, pending (offline or not yet), refused
	Reason string `json:"reason,omitempty"`
}

// Grant states.
const (
	GrantAccepted = "accepted"
	GrantPending  = "pending"
	GrantRefused  = "refused"
)

// Grant publishes an owner-signed tenant grant (from `tenant grant`) to
// every device sel matches, each its own signed fleet document, then
// waits up to wait for the online ones to take it.
func (f *Fleet) Grant(ctx context.Context, grant []byte, owner ed25519.PrivateKey, sel Selector, wait time.Duration) ([]GrantResult, error) {
	g, err := trust.OpenGrant(grant, owner.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("%w: grant: %w (is --key the owner's key that signed it?)", ErrInput, err)
	}
	c, err := meta.ParseCeiling(g.CeilingJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: grant: %w", ErrInput, err)
	}
	tenant := c.Tenant
	if err := f.Watch(ctx, doc.Root+"/dev/+/grant/"+tenant); err != nil {
		return nil, err
	}
	devs := f.Devices(sel)
	if len(devs) == 0 {
		return nil, fmt.Errorf("%w: no device matches", ErrInput)
	}
	var out []GrantResult
	for _, d := range devs {
		topic := doc.GrantTopic(d.ID, tenant)
		seq := uint64(time.Now().UnixMilli())
		f.mu.Lock()
		prev := f.grants[topic]
		f.mu.Unlock()
		if prev != nil {
			if pg, err := doc.OpenGrant(prev, owner.Public().(ed25519.PublicKey)); err == nil {
				seq = max(seq, pg.Seq+1)
			}
		}
		b, err := doc.SignGrant(doc.Grant{Tenant: tenant, Devices: []string{d.ID}, Seq: seq, Grant: grant}, owner)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
		if err := f.publish(ctx, topic, b); err != nil {
			return out, err
		}
		out = append(out, GrantResult{Device: d.ID, Tenant: tenant, Seq: seq, State: GrantPending})
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		pending := 0
		f.mu.Lock()
		for i := range out {
			res := &out[i]
			if res.State != GrantPending {
				continue
			}
			for _, t := range f.reported[res.Device].Tenants {
				if t.Tenant != tenant {
					continue
				}
				switch {
				case t.GrantSeq >= res.Seq:
					res.State = GrantAccepted
				case t.Error != "" && f.status[res.Device].Online:
					res.Reason = t.Error
				}
			}
			if res.State == GrantPending && f.status[res.Device].Online {
				pending++
			}
		}
		f.mu.Unlock()
		if pending == 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-deadline.C:
			f.mu.Lock()
			for i := range out {
				if out[i].State == GrantPending && out[i].Reason != "" && f.status[out[i].Device].Online {
					out[i].State = GrantRefused
				}
			}
			f.mu.Unlock()
			return out, nil
		case <-f.Changed():
		}
	}
}
