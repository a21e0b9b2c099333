// Package cli is the tinycontainer command line: small commands, each
// with examples in its --help. It is the only package importing cobra.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/internal/buildinfo"
)

// Exit codes, documented in the root command's help.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed (a device error, a fault it reports, ...)
	ExitUsage   = 2 // bad flags, arguments or input files
)

// Main runs the command line with args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainContext(context.Background(), args, stdout, stderr)
}

// MainContext is Main whose long-running verbs (device, demo --http) also
// end when ctx does, as on an interrupt.
func MainContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "tinycontainer:", err)
	return exitCode(err)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tinycontainer",
		Short: "A container runtime for multi-tenant microcontrollers and small edge devices",
		Long: `TinyContainer runs WebAssembly and eBPF containers of several tenants on one
device. Each container reaches the host only through endpoints, checked on
every call against its metadata (the rulebook), which can change at run time.

Exit codes: 0 success, 1 failure, 2 bad usage or bad input (wherever it is
detected: here, or by the device). Results go to stdout, as text or, with
--json, as JSON; errors go to stderr.

The user guide is in the repository's docs/ directory: docs/README.md.`,
		Example: `  tinycontainer demo
  tinycontainer run --insecure --for 5s examples/thermo/thermo.yaml
  tinycontainer bench`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Version(),
	}
	root.SetVersionTemplate("tinycontainer {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(), newDemoCmd(), newDeviceCmd(), newKeygenCmd(), newTenantCmd(), newPackCmd(),
		newInspectCmd(), newDeployCmd(), newPsCmd(), newStatusCmd(), newInfoCmd(),
		newLifecycleCmd(device.VerbStart, "Start a stopped or faulted container (signed)"),
		newLifecycleCmd(device.VerbStop, "Stop a container (signed)"),
		newLifecycleCmd(device.VerbRemove, "Remove a container and its kv data (signed)"),
		newMetaCmd(), newLogsCmd(), newStatsCmd(), newAuditCmd(), newMLCmd(), newBenchCmd(), newFleetCmd())
	return root
}
