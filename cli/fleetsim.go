package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/fleet/sim"
	"github.com/tinycontainer/tinycontainer/internal/buildinfo"
	"github.com/tinycontainer/tinycontainer/trust"
)

func newFleetSimulateCmd() *cobra.Command {
	var (
		devices  int
		broker   string
		data     string
		owner    string
		prefix   string
		first    int
		labels   []string
		user     string
		passFile string
		compile  bool
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "simulate --owner PUBFILE [--devices N] [--broker URL] [--data DIR]",
		Short: "Run many simulated fleet devices in this process until interrupted",
		Long: `Simulate runs N complete devices in one process, each with its own broker
connection (client id tc-ID-fleet), its own state (a directory under --data,
or memory) and its own scheduler, as if each were started with
"device --fleet URL --id ID". Devices are named PREFIX0000, PREFIX0001, ...
and labelled sim=1 and group=<index mod 10> besides any --label. Guests run
in the interpreters unless --compile.`,
		Example: `  tinycontainer fleet simulate --owner owner.pub --devices 100
  tinycontainer fleet simulate --owner owner.pub --devices 1000 --data ./sim --label site=lab`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if devices < 1 || devices > 100000 {
				return usagef("--devices %d: want 1 to 100000", devices)
			}
			if owner == "" {
				return usagef("--owner PUBFILE is required (the key the simulated devices trust)")
			}
			pub, err := trust.LoadPublicKey(owner)
			if err != nil {
				return usageError{err}
			}
			if err := doc.ValidID(prefix + "0"); err != nil {
				return usagef("--prefix: %v", err)
			}
			lm := map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return usagef("--label %q: want K=V", l)
				}
				lm[k] = v
			}
			if err := doc.ValidLabels(lm); err != nil {
				return usagef("--label: %v", err)
			}
			var pw []byte
			if passFile != "" {
				b, err := os.ReadFile(passFile)
				if err != nil {
					return usagef("--password-file: %v", err)
				}
				pw = []byte(strings.TrimRight(string(b), "\r\n"))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			f, err := sim.Start(ctx, sim.Options{Devices: devices, Broker: broker, Owner: pub, Dir: data, Prefix: prefix,
				First: first, Labels: lm, User: user, Password: pw, Compile: compile, Version: buildinfo.Version()})
			if err != nil {
				return err
			}
			ids := f.Devices()
			out := cmd.OutOrStdout()
			if asJSON {
				_ = json.NewEncoder(out).Encode(map[string]any{"event": "started", "devices": len(ids),
					"first": ids[0].ID, "last": ids[len(ids)-1].ID, "seconds": time.Since(start).Seconds()})
			} else {
				fmt.Fprintf(out, "%d simulated devices (%s .. %s) started in %.1fs; interrupt to stop\n",
					len(ids), ids[0].ID, ids[len(ids)-1].ID, time.Since(start).Seconds())
			}
			<-ctx.Done()
			f.Close()
			if asJSON {
				_ = json.NewEncoder(out).Encode(map[string]any{"event": "stopped", "devices": len(ids)})
			} else {
				fmt.Fprintf(out, "%d simulated devices stopped (offline published)\n", len(ids))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&devices, "devices", 10, "how many devices")
	cmd.Flags().StringVar(&broker, "broker", defaultBroker(), "the MQTT v5 broker (default from $TINYCONTAINER_BROKER)")
	cmd.Flags().StringVar(&data, "data", "", "directory for the devices' state (one subdirectory each); memory when empty")
	cmd.Flags().StringVar(&owner, "owner", "", "the owner's public key file the devices trust")
	cmd.Flags().StringVar(&prefix, "prefix", "sim-", "device id prefix")
	cmd.Flags().IntVar(&first, "first", 0, "index of the first device (to split a fleet over processes)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "a label K=V given to every device (repeatable)")
	cmd.Flags().StringVar(&user, "user", "", "broker user name of every device")
	cmd.Flags().StringVar(&passFile, "password-file", "", "file holding the broker password")
	cmd.Flags().BoolVar(&compile, "compile", false, "compile guests to machine code instead of interpreting them")
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON events instead of text")
	return cmd
}
