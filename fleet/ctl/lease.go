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
//
// Expiry is judged by each controller's own clock only. The holder writes
// Until by its clock (for people to read) and the lease's duration TTL.
// Another controller never compares Until with its own wall clock (two
// machines' clocks may disagree by more than a lease): it counts TTL on
// its own monotonic clock from when it saw the lease, or its latest
// renewal, arrive (leaseWatch). A renewal is a copy with another Until:
// the holder's clock only has to run forward, not agree with anyone's.

// Claim makes holder the driver of the rollout from now, with the next
// term.
func (r *Rollout) Claim(holder string, now time.Time) {
	r.Lease = Lease{Holder: holder, Term: r.Lease.Term + 1, Until: now.Add(r.Params.Lease), TTL: r.Params.Lease}
	r.Updated = now
}

// RenewDue reports whether the driver should renew its lease now (a third
// of it has passed).
func (r *Rollout) RenewDue(now time.Time) bool {
	return r.Lease.Until.Sub(now) < r.Params.Lease*2/3
}

// Renew extends the lease of the current holder.
func (r *Rollout) Renew(now time.Time) {
	r.Lease.Until, r.Lease.TTL = now.Add(r.Params.Lease), r.Params.Lease
	r.Updated = now
}

// leaseWatch is a lease as another controller sees it: live for its TTL
// from when this controller saw it (or its latest renewal) arrive, by
// this controller's clock.
type leaseWatch struct {
	lease Lease
	since time.Time // this controller's clock (monotonic)
}

// watchLease starts watching l, seen arriving at now.
func watchLease(l Lease, now time.Time) leaseWatch { return leaseWatch{l, now} }

// see records a copy of the lease seen at now; it reports whether the
// lease was renewed or changed hands since the last copy.
func (w *leaseWatch) see(l Lease, now time.Time) bool {
	if l == w.lease {
		return false
	}
	w.lease, w.since = l, now
	return true
}

// left is how long the lease stays live after now (<= 0: expired).
func (w leaseWatch) left(now time.Time) time.Duration {
	return w.lease.TTL - now.Sub(w.since)
}

// Supersedes reports whether a copy of the rollout seen after a claim of
// (holder, term) means that claim lost.
func (l Lease) Supersedes(holder string, term uint64) bool {
	return l.Term > term || l.Term == term && l.Holder != holder
}
