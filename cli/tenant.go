package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
)

func newTenantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Grant tenants their ceilings and install the grants on a device"}
	cmd.AddCommand(newTenantGrantCmd(), newTenantAddCmd(), newTenantLsCmd(), newTenantRevokeCmd())
	return cmd
}

func newTenantAddCmd() *cobra.Command {
	var mf mgmtFlags
	add := &cobra.Command{
		Use:     "add GRANT --key OWNERKEY",
		Short:   "Install a tenant grant on a device (signed by the owner)",
		Example: "  tinycontainer tenant add acme.grant --key owner.key",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			return execShow(cmd, &mf, device.VerbTenantAdd, "", g, func(w io.Writer, v map[string]string) {
				fmt.Fprintf(w, "added tenant %s (key %s)\n", v["tenant"], v["key"])
			})
		},
	}
	mf.add(add, true)
	mf.addJSON(add)
	return add
}
