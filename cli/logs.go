package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
)

// Log lines per request (the protocol allows 1..1000), and requests per
// `logs` run: more pages than a container's ring holds.
const (
	logPage     = 1000
	maxLogPages = device.MaxLogLines/logPage + 2
)

// followTail is how many retained lines `logs -f` shows before following
// when --tail is not given (as `tail -f` does).
const followTail = 10

// errStreamEnded is returned when the device ends a followed log stream: it
// is shutting down or the container was removed.
var errStreamEnded = errors.New("the device ended the log stream (it is shutting down, or the container was removed)")

func newLogsCmd() *cobra.Command {
	var (
		mf     mgmtFlags
		follow bool
		tail   int
		since  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "logs NAME [--tail N] [--since DUR] [-f]",
		Short: "Print a container's log lines; -f follows new ones (CoAP Observe)",
		Long: `Logs prints the log lines the device keeps of a container, oldest first:
every retained line by default, the newest N with --tail N, those of the
last DUR with --since DUR (both together: the newest N of those).

With -f it then keeps printing new lines until interrupted; without --tail
it first shows only the newest 10 retained lines (--tail -1 shows them all).
When the device shuts down or the container is removed, -f says so on
stderr and exits with 1.

With --json each line is one JSON object on its own line (seq, time,
container, text).`,
		Example: `  tinycontainer logs thermo
  tinycontainer logs --tail 20 thermo
  tinycontainer logs --since 5m thermo
  tinycontainer logs -f thermo
  tinycontainer logs -f --tail 0 --json thermo`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("tail") {
				tail = -1
				if follow {
					tail = followTail
				}
			}
			if tail < -1 {
				return usagef("--tail must be -1 (all), 0 or more, not %d", tail)
			}
			if since < 0 {
				return usagef("--since must not be negative")
			}
			ctx := cmd.Context()
			return mf.with(ctx, func(c *coap.Client) error {
				out := cmd.OutOrStdout()
				lines, last, err := retainedLogs(cmd, c, args[0])
				if err != nil {
					return err
				}
				if since > 0 {
					cut := time.Now().Add(-since)
					i := 0
					for i < len(lines) && lines[i].Time.Before(cut) {
						i++
					}
					lines = lines[i:]
				}
				if tail >= 0 && len(lines) > tail {
					lines = lines[len(lines)-tail:]
				}
				for _, l := range lines {
					if err := printLogLine(out, l, mf.asJSON); err != nil {
						return err
					}
				}
				if !follow {
					return nil
				}
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
				ch, ended, err := c.FollowLogs(ctx, args[0], last)
				if err != nil {
					return err
				}
				for l := range ch {
					if err := printLogLine(out, l, mf.asJSON); err != nil {
						return err
					}
				}
				if ctx.Err() != nil {
					return nil // interrupted: the normal end of -f
				}
				if err := ended(); err != nil {
					return fmt.Errorf("%w (log stream ended)", err)
				}
				return errStreamEnded
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVar(&tail, "tail", -1, fmt.Sprintf("show only the newest N retained lines (-1: all; with -f the default is %d)", followTail))
	cmd.Flags().DurationVar(&since, "since", 0, "show only lines written in the last DUR (e.g. 30s, 5m, 2h)")
	return cmd
}

// retainedLogs pages through the lines the device keeps of a container,
// oldest first, and returns them with the sequence number to follow from.
// The page bound stops a container that logs faster than we read from
// holding us here.
func retainedLogs(cmd *cobra.Command, c *coap.Client, name string) ([]mgmt.LogLine, uint64, error) {
	var all []mgmt.LogLine
	var last uint64
	for range maxLogPages {
		lines, err := c.Logs(cmd.Context(), name, last, logPage)
		if err != nil {
			return nil, 0, err
		}
		all = append(all, lines...)
		if len(lines) > 0 {
			last = lines[len(lines)-1].Seq
		}
		if len(lines) < logPage {
			break
		}
	}
	return all, last, nil
}
