package cli

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tinycontainer/tinycontainer/fleet/ctl"
	"github.com/tinycontainer/tinycontainer/trust"
)

func loadKey(file string) (ed25519.PrivateKey, error) {
	k, err := trust.LoadPrivateKey(file)
	if err != nil {
		return nil, usageError{err}
	}
	return k, nil
}

// requireKey loads the private key of --key; without one the usage error
// says "--key " + need.
func requireKey(file, need string) (ed25519.PrivateKey, error) {
	if file == "" {
		return nil, usagef("--key %s", need)
	}
	return loadKey(file)
}

func loadPub(file string) (ed25519.PublicKey, error) {
	k, err := trust.LoadPublicKey(file)
	if err != nil {
		return nil, usageError{err}
	}
	return k, nil
}

func labelText(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + l[k]
	}
	if len(keys) == 0 {
		return "-"
	}
	return strings.Join(keys, ",")
}

func printDevices(w io.Writer, devs []ctl.Device) {
	fmt.Fprintf(w, "%-20s %-7s %-8s %-20s %10s %-10s %s\n", "ID", "ONLINE", "HEALTH", "LAST_SEEN", "CONTAINERS", "VERSION", "LABELS")
	for _, d := range devs {
		seen := "-"
		if !d.LastSeen.IsZero() {
			seen = d.LastSeen.Format(time.RFC3339)
		}
		online := "no"
		if d.Online {
			online = "yes"
		}
		fmt.Fprintf(w, "%-20s %-7s %-8s %-20s %10d %-10s %s\n", trunc(d.ID, 20), online, orDash(d.Health), seen, d.Containers,
			trunc(orDash(d.Version), 10), labelText(d.Labels))
		for _, p := range d.Problems {
			fmt.Fprintf(w, "    %s\n", p)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printFleetPs(w io.Writer, cs []ctl.Container) {
	fmt.Fprintf(w, "%-20s %-10s %-8s %-8s %4s %-8s %6s %11s %-7s %s\n", "DEVICE", "NAME", "TENANT", "STATE", "VER", "HEALTH", "FAULTS", "ACTIVATIONS", "RUNTIME", "ERROR")
	for _, c := range cs {
		fmt.Fprintf(w, "%-20s %-10s %-8s %-8s %4d %-8s %6d %11d %-7s %s\n", trunc(c.Device, 20), trunc(c.Name, 10), trunc(c.Tenant, 8),
			c.State, c.Version, orDash(c.Health), c.Faults, c.Activations, c.Runtime, c.Error)
	}
}

func printGrants(w io.Writer, res []ctl.GrantResult) {
	for _, r := range res {
		line := fmt.Sprintf("%s: grant of %s (seq %d) %s", r.Device, r.Tenant, r.Seq, r.State)
		if r.Reason != "" {
			line += ": " + r.Reason
		}
		fmt.Fprintln(w, line)
	}
}

var jobOrder = []string{ctl.JobSucceeded, ctl.JobInProgress, ctl.JobQueued, ctl.JobPending, ctl.JobFailed, ctl.JobRejected,
	ctl.JobTimedOut, ctl.JobCanceled, ctl.JobRollingBack, ctl.JobRolledBack, ctl.JobRollbackFailed}

func countsText(c map[string]int) string {
	var parts []string
	for _, s := range jobOrder {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func printRolloutStatus(w io.Writer, st ctl.RolloutStatus) {
	fmt.Fprintf(w, "rollout %s: %s/%s to version %d (image %s)\n", st.ID, st.Tenant, st.Container, st.Version, st.Image[:12])
	state := st.State
	if st.Reason != "" {
		state += ": " + st.Reason
	}
	fmt.Fprintf(w, "state:   %s\n", state)
	sel := st.Selector
	if sel == "" {
		sel = "all devices"
	}
	fmt.Fprintf(w, "devices: %d (%s); canary %s, waves %s, max failures %s, health %s\n", len(st.Devices), sel,
		st.Params.Canary, st.Params.Wave, st.Params.MaxFailures, st.Params.Health)
	lease := fmt.Sprintf("%s (term %d)", st.Lease.Holder, st.Lease.Term)
	switch {
	case st.State == ctl.RolloutCompleted || st.State == ctl.RolloutAborted:
		lease += ", the rollout has ended"
	case st.Lease.Live:
		lease += ", lease until " + st.Lease.Expires.Format(time.RFC3339)
	default:
		lease += ", lease expired at " + st.Lease.Expires.Format(time.RFC3339) + ": fleet resume takes it up"
	}
	fmt.Fprintf(w, "driver:  %s\n", lease)
	if !st.Verified {
		fmt.Fprintln(w, "(signatures not checked: give --pub TENANT_PUB to check them)")
	}
	for _, wv := range st.Waves {
		name := fmt.Sprintf("wave %d", wv.Index)
		if wv.Index == 0 {
			name = "canary"
		}
		mark := " "
		if wv.Index == st.Wave && !(st.State == ctl.RolloutCompleted || st.State == ctl.RolloutAborted) {
			mark = ">"
		}
		fmt.Fprintf(w, "%s %-7s %4d devices: %s\n", mark, name, wv.Size, countsText(wv.Counts))
	}
	fmt.Fprintf(w, "\n%-20s %4s %-16s %4s %4s %-8s %-7s %s\n", "DEVICE", "WAVE", "STATE", "FROM", "NOW", "HEALTH", "ONLINE", "REASON")
	caught := false
	for _, d := range st.Devices {
		state := d.State
		if d.Recorded != d.State {
			state += "*"
			caught = true
		}
		online := "no"
		if d.Online {
			online = "yes"
		}
		fmt.Fprintf(w, "%-20s %4d %-16s %4d %4d %-8s %-7s %s\n", trunc(d.Device, 20), d.Wave, state, d.From, d.Running, orDash(d.Health), online, d.Reason)
	}
	if caught {
		fmt.Fprintln(w, "(* as the device reports now: it caught up after the rollout recorded it)")
	}
}

func waveName(i, waves int) string {
	if i == 0 {
		return "canary"
	}
	return fmt.Sprintf("wave %d/%d", i, waves-1)
}

// progress prints a rollout's events: a live line on a terminal, plain
// lines otherwise, or one JSON object per line.
type progress struct {
	w        io.Writer
	asJSON   bool
	live     bool
	id       string
	counts   map[string]int
	source   func() map[string]int // the rollout's counts now (called from its driver)
	lastLine time.Time
}

func newProgress(w io.Writer, asJSON bool) *progress {
	p := &progress{w: w, asJSON: asJSON, counts: map[string]int{}}
	if f, ok := w.(*os.File); ok && !asJSON {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.live = true
		}
	}
	return p
}

// started prints the rollout's id first, then what it will do.
func (p *progress) started(run *ctl.Run) {
	r := run.Rollout()
	p.id, p.source, p.counts = r.ID, r.Counts, r.Counts()
	if p.asJSON {
		p.json(map[string]any{"event": "created", "rollout": r.ID, "tenant": r.Tenant, "container": r.Container,
			"version": r.Version, "image": r.Image, "devices": len(r.Jobs), "waves": len(r.Waves), "skipped": run.Skipped})
		return
	}
	fmt.Fprintln(p.w, r.ID)
	sizes := make([]string, len(r.Waves))
	for i, w := range r.Waves {
		sizes[i] = fmt.Sprint(w.Size)
	}
	fmt.Fprintf(p.w, "rolling %s/%s version %d out to %d devices in %d waves (%s), health %s\n",
		r.Tenant, r.Container, r.Version, len(r.Jobs), len(r.Waves), strings.Join(sizes, ", "), r.Params.Health)
	for _, s := range run.Skipped {
		fmt.Fprintf(p.w, "skipped %s: %s\n", s.Device, s.Reason)
	}
}

func (p *progress) resumed(run *ctl.Run) {
	r := run.Rollout()
	p.id, p.source, p.counts = r.ID, r.Counts, r.Counts()
	if p.asJSON {
		p.json(map[string]any{"event": "resumed", "rollout": r.ID, "state": r.State, "wave": r.Wave, "lease": r.Lease})
		return
	}
	fmt.Fprintln(p.w, r.ID)
	fmt.Fprintf(p.w, "%s, wave %d of %d, driven by %s (term %d)\n", r.State, r.Wave, len(r.Waves), r.Lease.Holder, r.Lease.Term)
}

func (p *progress) json(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(p.w, "%s\n", b)
}

func (p *progress) event(e ctl.Event) {
	if p.asJSON {
		p.json(e)
		return
	}
	if p.source != nil {
		p.counts = p.source()
	}
	line := ""
	switch e.Kind {
	case ctl.EvStarted:
		return
	case ctl.EvWave:
		line = fmt.Sprintf("%s %s started: %d devices", e.Time.Format("15:04:05"), waveName(e.Wave, e.Waves), e.Counts["size"])
	case ctl.EvWaveDone:
		line = fmt.Sprintf("%s %s done: %s", e.Time.Format("15:04:05"), waveName(e.Wave, e.Waves), countsText(e.Counts))
	case ctl.EvAborting:
		line = fmt.Sprintf("%s aborting: %s; returning the devices touched", e.Time.Format("15:04:05"), e.Reason)
	case ctl.EvCompleted:
		line = fmt.Sprintf("%s completed: %s", e.Time.Format("15:04:05"), countsText(e.Counts))
	case ctl.EvAborted:
		line = fmt.Sprintf("%s aborted: %s", e.Time.Format("15:04:05"), countsText(e.Counts))
	case ctl.EvDevice:
		switch e.State {
		case ctl.JobFailed, ctl.JobRejected, ctl.JobTimedOut, ctl.JobRollbackFailed, ctl.JobPending:
			line = fmt.Sprintf("%s %s %s", e.Time.Format("15:04:05"), e.Device, e.State)
			if e.Reason != "" {
				line += ": " + e.Reason
			}
		default:
			if p.live {
				p.redraw(false)
			}
			return
		}
	}
	if p.live {
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
		p.redraw(true)
		return
	}
	fmt.Fprintln(p.w, line)
}

// redraw rewrites the live line, at most ten times a second.
func (p *progress) redraw(force bool) {
	if !force && time.Since(p.lastLine) < 100*time.Millisecond {
		return
	}
	p.lastLine = time.Now()
	fmt.Fprintf(p.w, "\r\033[K%s: %s", p.id, countsText(p.counts))
}

func (p *progress) done() {
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// trunc cuts s to n runes, marking the cut with "~".
func trunc(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "~"
	}
	return s
}
