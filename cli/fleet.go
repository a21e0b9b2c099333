package cli

import "github.com/spf13/cobra"

func newFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Manage many devices through an MQTT broker",
		Long: `Fleet manages devices started with --fleet through an MQTT v5 broker. All
fleet state lives on the broker as retained messages: this command keeps
none, so any number of controllers may run, and any of them can show a
rollout or take over one whose controller died (fleet resume).

See docs/fleet.md for the topic tree, the documents and a walkthrough.`,
	}
	cmd.AddCommand(newFleetACLCmd(), newFleetSimulateCmd())
	return cmd
}
