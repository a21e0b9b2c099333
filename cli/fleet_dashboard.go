package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/fleet/ctl"
	"github.com/tinycontainer/tinycontainer/fleet/dashboard"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/web"
)

func newFleetDashboardCmd() *cobra.Command {
	var (
		ff          fleetFlags
		httpAddr    string
		allowRemote bool
	)
	cmd := &cobra.Command{
		Use:   "dashboard --http ADDR",
		Short: "Serve a read-only page of the fleet: devices, rollouts and their waves, every device's containers",
		Long: `Dashboard watches the broker's retained state, as the read verbs do, and
serves it until interrupted: a page at / that updates itself (devices online
or offline with their labels, rollouts with each wave's devices by state,
every device's containers) and the JSON behind it under /api/ (devices,
containers, rollouts, stats: the objects of fleet devices, fleet ps and
fleet status --json). Loopback only unless --allow-remote.`,
		Example: `  tinycontainer fleet dashboard --http 127.0.0.1:8081
  tinycontainer fleet dashboard --http 127.0.0.1:8081 --broker mqtts://broker.example:8883 --user ops --password-file ops.pw`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if httpAddr == "" {
				return usagef("--http ADDR is required")
			}
			if err := web.CheckAddr(httpAddr, allowRemote); err != nil {
				return usageError{err}
			}
			return ff.with(cmd, func(ctx context.Context, f *ctl.Fleet) error {
				if err := f.Settle(ctx); err != nil && ctx.Err() == nil {
					return err
				}
				s, err := web.ServeFleet(ctx, httpAddr, dashboard.Reader(f), web.Options{AllowRemote: allowRemote})
				if errors.Is(err, mgmt.ErrInvalid) || errors.Is(err, mgmt.ErrDenied) {
					return usageError{err}
				}
				if err != nil {
					return err
				}
				defer s.Close()
				fmt.Fprintf(cmd.OutOrStdout(), "Fleet dashboard: %s (serving until interrupted)\n", s.URL())
				<-ctx.Done()
				return nil
			}, ctl.RolloutFilter(""))
		},
	}
	ff.add(cmd)
	cmd.Flags().StringVar(&httpAddr, "http", "", "serve the dashboard on this TCP address, e.g. 127.0.0.1:8081")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow --http on an address other than loopback")
	return cmd
}
