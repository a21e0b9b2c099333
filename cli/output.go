package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/msg/mqtt"
)

// The output convention of every verb: the result on stdout, as text for
// people or, with --json, as JSON (one document, or one object per line for
// streams such as logs); errors on stderr, prefixed "tinycontainer:"; the
// exit code from exitCode.

// badInput are the error classes that mean the caller's input is wrong,
// wherever it was found: here, or by the device (its answer maps back to
// these classes). They exit with ExitUsage, like usage errors.
var badInput = []error{mgmt.ErrInvalid, mgmt.ErrTooLarge, mqtt.ErrBadURL}

// exitCode is the exit code for an error a command returned.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var u usageError
	if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage
	}
	for _, c := range badInput {
		if errors.Is(err, c) {
			return ExitUsage
		}
	}
	return ExitFailure
}

// addJSONFlag adds the --json flag every verb with a result has.
func addJSONFlag(cmd *cobra.Command, asJSON *bool) {
	cmd.Flags().BoolVar(asJSON, "json", false, "print the result as JSON")
}

// emit prints a result: v as JSON with asJSON, else human's text.
func emit(cmd *cobra.Command, asJSON bool, v any, human func(w io.Writer)) error {
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), v)
	}
	human(cmd.OutOrStdout())
	return nil
}

// logTime is the format of log timestamps: fixed width (milliseconds always
// shown), so that lines align.
const logTime = "2006-01-02T15:04:05.000Z07:00"

// printLogLine writes one log line as text, or as a JSON object on one
// line.
func printLogLine(w io.Writer, l mgmt.LogLine, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(w, "%s %s: %s\n", l.Time.Format(logTime), l.Container, l.Text)
	return err
}

// usageArgs makes a wrong count of arguments a usage error (exit code 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
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
				low = fmt.Sprintf(" LOW (below %s): writes will soon fail", meta.HumanSize(s.LowSpaceBytes))
			}
			fmt.Fprintf(w, "storage     %s free of %s%s, %d kv errors\n", meta.HumanSize(s.FreeBytes), meta.HumanSize(s.TotalBytes), low, s.Errors)
		}
	}
	wd := info.Watchdog
	fmt.Fprintf(w, "watchdog    %d runaway activations stopped; past their budget by p50 %v, p99 %v, worst %v\n", wd.Stopped,
		time.Duration(wd.OvershootP50US)*time.Microsecond, time.Duration(wd.OvershootP99US)*time.Microsecond,
		time.Duration(wd.OvershootMaxUS)*time.Microsecond)
	if mem := info.Memory; mem != nil {
		limit := "no soft limit"
		if mem.LimitBytes > 0 {
			limit = "soft limit " + meta.HumanSize(mem.LimitBytes)
		}
		gogc := "GOGC " + strconv.Itoa(mem.GOGC)
		if mem.GOGC < 0 {
			gogc = "GOGC off"
		}
		fmt.Fprintf(w, "memory      %s held by Go (live heap %s), %s, %s, %d collections\n",
			meta.HumanSize(mem.GoBytes), meta.HumanSize(mem.HeapLiveBytes), limit, gogc, mem.GCCycles)
	}
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

// printTable writes container stats as an aligned table; names are never
// cut, the columns widen instead.
func printTable(w io.Writer, cs []mgmt.ContainerStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTENANT\tRUNTIME\tSTATE\tVER\tACTIVATIONS\tFAULTS\tLAST_FAULT\tMISSED\tCALLS\tDENIED\tCPU_US\tLOG_DROP\tSTORE_ERR")
	for _, c := range cs {
		lf := c.LastFault
		if lf == "" {
			lf = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n",
			c.Name, c.Tenant, c.Runtime, c.State, c.Version, c.Activations, c.Faults, lf,
			c.MissedDeadlines, c.EndpointCalls, c.DeniedCalls, c.CPUTimeUS, c.LogLinesDropped, c.StorageErrors)
	}
	_ = tw.Flush()
}
