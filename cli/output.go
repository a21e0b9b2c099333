package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// usageArgs makes a wrong count of arguments a usage error (exit code 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// byteSize renders n bytes in KiB, MiB or GiB.
func byteSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

// printInfo writes info as a few aligned lines.
func printInfo(w io.Writer, info mgmt.DeviceInfo) {
	fmt.Fprintf(w, "uptime      %s\n", time.Duration(info.UptimeS*float64(time.Second)).Round(time.Second))
	var rts []string
	for _, r := range info.Runtimes {
		rts = append(rts, r.Kind+" ("+r.Engine+")")
	}
	fmt.Fprintf(w, "runtimes    %s\n", strings.Join(rts, ", "))
	fmt.Fprintf(w, "containers  %d running, %d stopped, %d faulted\n",
		info.Containers["running"], info.Containers["stopped"], info.Containers["faulted"])
	b := info.Bus
	fmt.Fprintf(w, "bus         %d published, %d delivered, %d dropped, %d unmatched, %d rejected, %d subscriptions\n",
		b.Published, b.Delivered, b.Dropped, b.Unmatched, b.Rejected, b.Subscriptions)
	if s := info.Storage; s != nil {
		switch {
		case s.Error != "":
			fmt.Fprintf(w, "storage     free space unknown (%s), %d kv errors\n", s.Error, s.Errors)
		case s.TotalBytes == 0:
			fmt.Fprintf(w, "storage     in memory, %d kv errors\n", s.Errors)
		default:
			low := ""
			if s.LowSpace {
				low = fmt.Sprintf(" LOW (below %s): writes will soon fail", byteSize(s.LowSpaceBytes))
			}
			fmt.Fprintf(w, "storage     %s free of %s%s, %d kv errors\n", byteSize(s.FreeBytes), byteSize(s.TotalBytes), low, s.Errors)
		}
	}
	wd := info.Watchdog
	fmt.Fprintf(w, "watchdog    %d runaway activations stopped; past their budget by p50 %v, p99 %v, worst %v\n", wd.Stopped,
		time.Duration(wd.OvershootP50US)*time.Microsecond, time.Duration(wd.OvershootP99US)*time.Microsecond,
		time.Duration(wd.OvershootMaxUS)*time.Microsecond)
	m := info.MQTT
	if m == nil {
		fmt.Fprintln(w, "mqtt        none (messages stay on the device)")
		return
	}
	state := "disconnected"
	if m.Connected {
		state = "connected"
	}
	fmt.Fprintf(w, "mqtt        %s, %d sent, %d queued, %d received, %d dropped out, %d dropped in, %d connects\n",
		state, m.Sent, m.Queued, m.Received, m.OutDropped, m.InDropped, m.Connects)
	if m.LastError != "" {
		fmt.Fprintf(w, "mqtt error  %s\n", m.LastError)
	}
}

// usageError marks errors that are the caller's to fix (exit code 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// printTable writes container stats as an aligned table.
func printTable(w io.Writer, cs []mgmt.ContainerStatus) {
	fmt.Fprintf(w, "%-10s %-8s %-7s %-8s %4s %11s %6s %-10s %6s %7s %6s %9s %8s %9s\n",
		"NAME", "TENANT", "RUNTIME", "STATE", "VER", "ACTIVATIONS", "FAULTS", "LAST_FAULT", "MISSED", "CALLS", "DENIED", "CPU_US", "LOG_DROP", "STORE_ERR")
	for _, c := range cs {
		lf := c.LastFault
		if lf == "" {
			lf = "-"
		}
		fmt.Fprintf(w, "%-10s %-8s %-7s %-8s %4d %11d %6d %-10s %6d %7d %6d %9d %8d %9d\n",
			trunc(c.Name, 10), trunc(c.Tenant, 8), c.Runtime, c.State, c.Version, c.Activations, c.Faults, lf,
			c.MissedDeadlines, c.EndpointCalls, c.DeniedCalls, c.CPUTimeUS, c.LogLinesDropped, c.StorageErrors)
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "~"
}
