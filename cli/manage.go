package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
	"github.com/tinycontainer/tinycontainer/runtime"
)

func newDeployCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:   "deploy IMAGE",
		Short: "Install or upgrade a container from a signed image, and start it",
		Long: `Deploy sends a signed image (made by pack, not a manifest) to the device,
which checks its signer, the tenant's ceiling and the version, compiles it
and starts it. An upgrade keeps the container's kv data. See
docs/getting-started.md and docs/management.md.`,
		Example: "  tinycontainer deploy thermo.img\n  tinycontainer deploy --device 10.0.0.7:5683 thermo.img",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			// What the device would refuse as malformed is refused here,
			// with a message that says what the file is instead.
			parsed, err := openImageFile(args[0], img, packHint(args[0]))
			if err != nil {
				return err
			}
			if err := (runtime.Config{CodeLimit: runtime.MaxCodeLimit}).CheckCode(parsed.Code); err != nil {
				return usagef("%s: %v", args[0], err)
			}
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				st, err := c.Deploy(cmd.Context(), img)
				if err != nil {
					return err
				}
				if mf.asJSON {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deployed %s v%d (tenant %s): %s\n", st.Name, st.Version, st.Tenant, st.State)
				return nil
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

func newPsCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     "ps",
		Short:   "List the containers of a device",
		Example: "  tinycontainer ps\n  tinycontainer ps --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				cs, err := c.List(cmd.Context())
				if err != nil {
					return err
				}
				return mf.show(cmd, cs)
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

func newInfoCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show the device as a whole: uptime, engines, containers by state, messaging",
		Long: `Info shows what no single container does: how long the device has run, how
each runtime executes guests, how many containers are in each state, the
message bus's counters, the device process's memory and its memory limit
(docs/device.md) and, when the device has --mqtt, the bridge's
(connected, sent, received, dropped, the broker's last error).`,
		Example: "  tinycontainer info\n  tinycontainer info --json --device 10.0.0.7:5683",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				info, err := c.Info(cmd.Context())
				if err != nil {
					return err
				}
				if mf.asJSON {
					return writeJSON(cmd.OutOrStdout(), info)
				}
				printInfo(cmd.OutOrStdout(), info)
				return nil
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

func newStatusCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     "status NAME",
		Short:   "Show one container",
		Example: "  tinycontainer status thermo --json",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				st, err := c.Status(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if mf.asJSON {
					return writeJSON(cmd.OutOrStdout(), st) // one object, as SPEC's status
				}
				return mf.show(cmd, []mgmt.ContainerStatus{st})
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

// lifecycleDone is the past tense of each lifecycle verb, for its report.
var lifecycleDone = map[string]string{device.VerbStart: "started", device.VerbStop: "stopped", device.VerbRemove: "removed"}

func newLifecycleCmd(verb, short string) *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     verb + " NAME --key F",
		Short:   short,
		Example: fmt.Sprintf("  tinycontainer %s thermo --key acme.key\n  tinycontainer %s thermo --key acme.key --json", verb, verb),
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if verb == device.VerbRemove {
				return execShow(cmd, &mf, verb, args[0], nil, func(w io.Writer, v map[string]string) {
					fmt.Fprintf(w, "removed %s (its kv data too)\n", v["removed"])
				})
			}
			return execShow(cmd, &mf, verb, args[0], nil, func(w io.Writer, st mgmt.ContainerStatus) {
				fmt.Fprintf(w, "%s %s v%d (tenant %s): %s\n", lifecycleDone[verb], st.Name, st.Version, st.Tenant, st.State)
			})
		},
	}
	mf.add(cmd, true)
	mf.addJSON(cmd)
	return cmd
}

func newMetaCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "meta", Short: "Read or replace a running container's metadata"}
	var gf mgmtFlags
	get := &cobra.Command{
		Use:     "get NAME",
		Short:   "Print the metadata in force (YAML, or JSON with --json)",
		Example: "  tinycontainer meta get thermo",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return gf.with(cmd.Context(), func(c *coap.Client) error {
				b, err := c.Meta(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if gf.asJSON {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
					return err
				}
				m, err := meta.Parse(b)
				if err != nil {
					return err
				}
				y, err := m.YAML()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(y)
				return err
			})
		},
	}
	gf.add(get, false)
	gf.addJSON(get)

	var af mgmtFlags
	var manifest string
	apply := &cobra.Command{
		Use:   "apply NAME --manifest F --key F",
		Short: "Replace the metadata of a running container (signed; higher version)",
		Long: `Apply replaces the rulebook of a running container without restarting it:
permissions take effect at its next endpoint call, schedule changes at its
next activation, and it keeps its memory. The manifest's fields:
docs/manifest.md; its version must be higher than the one in force.`,
		Example: "  tinycontainer meta apply thermo --manifest thermo-v2.yaml --key acme.key",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if manifest == "" {
				return usagef("--manifest is required")
			}
			data, err := os.ReadFile(manifest)
			if err != nil {
				return usageError{err}
			}
			m, err := meta.Parse(data)
			if err != nil {
				return usageError{err}
			}
			mj, err := json.Marshal(m)
			if err != nil {
				return err
			}
			return execShow(cmd, &af, device.VerbMetaApply, args[0], mj, func(w io.Writer, st mgmt.ContainerStatus) {
				fmt.Fprintf(w, "applied metadata v%d to %s (tenant %s): %s, not restarted\n", st.Version, st.Name, st.Tenant, st.State)
			})
		},
	}
	af.add(apply, true)
	af.addJSON(apply)
	apply.Flags().StringVar(&manifest, "manifest", "", "the new manifest (YAML or JSON)")
	cmd.AddCommand(get, apply)
	return cmd
}

func newStatsCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:     "stats [NAME]",
		Short:   "Show container stats (all, or one)",
		Example: "  tinycontainer stats --json\n  tinycontainer stats thermo",
		Args:    usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				var cs []mgmt.ContainerStatus
				var err error
				if len(args) == 1 {
					var st mgmt.ContainerStatus
					st, err = c.ContainerStats(cmd.Context(), args[0])
					cs = []mgmt.ContainerStatus{st}
				} else {
					cs, err = c.Stats(cmd.Context())
				}
				if err != nil {
					return err
				}
				return mf.show(cmd, cs)
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

// maxAuditLimit is the most entries one audit request may ask for.
const maxAuditLimit = 1000

func newAuditCmd() *cobra.Command {
	var (
		mf    mgmtFlags
		limit int
	)
	cmd := &cobra.Command{
		Use:     "audit",
		Short:   "Show the device's audit log (denied calls, refused requests)",
		Example: "  tinycontainer audit --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > maxAuditLimit {
				return usagef("--limit must be 1..%d", maxAuditLimit)
			}
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				es, err := c.Audit(cmd.Context(), limit)
				if err != nil {
					return err
				}
				if mf.asJSON {
					if es == nil {
						es = []mgmt.AuditEntry{}
					}
					return writeJSON(cmd.OutOrStdout(), es)
				}
				if len(es) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no audit entries: no call or request has been refused")
				}
				for _, e := range es {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s) %s %s: %s\n", e.Time.Format(time.RFC3339), e.Container, e.Tenant, e.Op, e.Endpoint, e.Reason)
				}
				return nil
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	cmd.Flags().IntVar(&limit, "limit", 100, "newest entries to show")
	return cmd
}
