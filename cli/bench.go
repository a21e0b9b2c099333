package cli

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/bench"
)

func newBenchCmd() *cobra.Command {
	var (
		asJSON, quick    bool
		cpuprofile, only string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Print the performance figures of this build",
		Long: `Bench measures this build on this machine, through the same layers a
container uses: endpoint calls (permitted and denied), warm activations,
instantiation, the watchdog's stop latency, idle memory per container,
compute under the watchdog against bare wazero, eBPF, TinyML inference and
messaging. CPU-bound figures are thread CPU time, so they hold on a busy
machine. Each figure is shown with its target and whether it meets it.`,
		Example: "  tinycontainer bench\n  tinycontainer bench --json > figures.json\n  tinycontainer bench --quick\n  tinycontainer bench --only sched/adversarial",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return usageError{err}
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			out := cmd.OutOrStdout()
			var progress func(bench.Result)
			if !asJSON {
				fmt.Fprintf(out, "%-32s %12s %-20s %-4s %-16s %s\n", "FIGURE", "VALUE", "UNIT", "", "TARGET", "WHAT")
				progress = func(r bench.Result) { fmt.Fprintln(out, bench.Format(r)) }
			}
			rs := bench.Run(bench.Options{Quick: quick, Only: only}, progress)
			if asJSON {
				return writeJSON(out, rs)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	cmd.Flags().BoolVar(&quick, "quick", false, "few iterations: rough figures, fast")
	cmd.Flags().StringVar(&only, "only", "", "measure only the figures whose names start with this (\"sched/\", \"wasm/compute\")")
	cmd.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file (the build's default.pgo is made from one)")
	return cmd
}
