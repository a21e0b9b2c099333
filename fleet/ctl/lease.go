package ctl

import "time"

// The lease keeps two controllers from driving one rollout. MQTT has no
// compare-and-swap, so the lease rests on two things the broker does give:
// the retained message is the last one published, and every subscriber
// sees the messages of one topic in the same order. A controller claims
// the rollout by publishing it with the next term and itself as holder,
// then renews the lease while it drives. It stops driving as soon as it
// sees, after its own claim, a copy of the rollout with a higher term or
// with its term held by another controller: of two claims published at
// once, the later one is retained and wins, and both controllers agree on
// which one that is.

// Claim makes holder the driver of the rollout from now, with the next
// term.
func (r *Rollout) Claim(holder string, now time.Time) {
	r.Lease = Lease{Holder: holder, Term: r.Lease.Term + 1, Until: now.Add(r.Params.Lease)}
	r.Updated = now
}

// RenewDue reports whether the driver should renew its lease now (a third
// of it has passed).
func (r *Rollout) RenewDue(now time.Time) bool {
	return r.Lease.Until.Sub(now) < r.Params.Lease*2/3
}

// Renew extends the lease of the current holder.
func (r *Rollout) Renew(now time.Time) {
	r.Lease.Until = now.Add(r.Params.Lease)
	r.Updated = now
}

// LeaseLive reports whether the lease has not yet expired at now.
func (r *Rollout) LeaseLive(now time.Time) bool { return now.Before(r.Lease.Until) }

// Supersedes reports whether a copy of the rollout seen after a claim of
// (holder, term) means that claim lost.
func (l Lease) Supersedes(holder string, term uint64) bool {
	return l.Term > term || l.Term == term && l.Holder != holder
}
