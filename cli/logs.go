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
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
)

// Log lines per request (the protocol allows 1..1000), and requests per
// `logs` run: more pages than a container's ring holds.
const (
	logPage     = 1000
	maxLogPages = device.MaxLogLines/logPage + 2
)

func newLogsCmd() *cobra.Command {
	var (
		mf     mgmtFlags
		follow bool
	)
	cmd := &cobra.Command{
		Use:     "logs NAME [-f]",
		Short:   "Print a container's log lines; -f follows new ones (CoAP Observe)",
		Example: "  tinycontainer logs thermo\n  tinycontainer logs -f thermo",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return mf.with(ctx, func(c *coap.Client) error {
				out := cmd.OutOrStdout()
				// Page through what the device keeps; the page bound stops a
				// container that logs faster than we read from holding us here.
				var last uint64
				for range maxLogPages {
					lines, err := c.Logs(ctx, args[0], last, logPage)
					if err != nil {
						return err
					}
					for _, l := range lines {
						fmt.Fprintf(out, "%s %s: %s\n", l.Time.Format(time.RFC3339Nano), l.Container, l.Text)
						last = l.Seq
					}
					if len(lines) < logPage {
						break
					}
				}
				if !follow {
					return nil
				}
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
				ch, err := c.WatchLogs(ctx, args[0], last)
				if err != nil {
					return err
				}
				for l := range ch {
					fmt.Fprintf(out, "%s %s: %s\n", l.Time.Format(time.RFC3339Nano), l.Container, l.Text)
				}
				if ctx.Err() == nil {
					return errors.New("the device ended the log stream")
				}
				return nil
			})
		},
	}
	mf.add(cmd, false)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	return cmd
}
