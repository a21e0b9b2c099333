package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
	"github.com/tinycontainer/tinycontainer/trust"
)

// tenant ls and tenant revoke: the tenants of a device.

func newTenantLsCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List a device's tenants with their ceilings",
		Long: `Ls lists the tenants granted on a device: each tenant's key, how many of its
containers are installed, and its ceiling (the fields of tenant grant), with
the call rates in force, defaults included. --json gives an array of
{name, key, containers, ceiling}.`,
		Example: "  tinycontainer tenant ls\n  tinycontainer tenant ls --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				ts, err := c.Tenants(cmd.Context())
				if err != nil {
					return err
				}
				if mf.asJSON {
					if ts == nil {
						ts = []mgmt.TenantInfo{}
					}
					return writeJSON(cmd.OutOrStdout(), ts)
				}
				return printTenants(cmd.OutOrStdout(), ts)
			})
		},
	}
	mf.add(cmd, false)
	mf.addJSON(cmd)
	return cmd
}

// printTenants writes one block per tenant: a heading line, then its
// ceiling as the grant would say it, then the rates in force.
func printTenants(w io.Writer, ts []mgmt.TenantInfo) error {
	if len(ts) == 0 {
		_, err := fmt.Fprintln(w, "no tenants")
		return err
	}
	for i, t := range ts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		n := "containers"
		if t.Containers == 1 {
			n = "container"
		}
		fmt.Fprintf(w, "%s  key %s  %d %s\n", t.Name, t.Key, t.Containers, n)
		c, err := meta.ParseCeiling(t.Ceiling)
		if err != nil {
			fmt.Fprintf(w, "  ceiling not readable by this build: %v\n", err)
			continue
		}
		y, err := c.YAML()
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(strings.TrimRight(string(y), "\n"), "\n") {
			if !strings.HasPrefix(line, "tenant:") {
				fmt.Fprintf(w, "  %s\n", line)
			}
		}
		if c.MaxCPU == 0 {
			fmt.Fprintln(w, "  max_cpu: no cap")
		}
		var rates []string
		for _, r := range c.Rates() {
			s := fmt.Sprintf("%s=%d/s", r.Pattern, r.N)
			if !granted(c, r.Pattern) {
				s += " (default)"
			}
			rates = append(rates, s)
		}
		fmt.Fprintf(w, "  rates in force: %s\n", strings.Join(rates, ", "))
	}
	return nil
}

func granted(c *meta.Ceiling, pattern string) bool {
	for _, r := range c.MaxRate {
		if r.Pattern == pattern {
			return true
		}
	}
	return false
}

func newTenantRevokeCmd() *cobra.Command {
	var mf mgmtFlags
	cmd := &cobra.Command{
		Use:   "revoke TENANT --key OWNER_KEY",
		Short: "Revoke a tenant's grant on a device (signed by the owner); its containers stop",
		Long: `Revoke removes a tenant's grant from a device: its key signs nothing more
there, and every container of the tenant is stopped (rm removes them; the
owner may also start them again). Only the owner may revoke.`,
		Example: "  tinycontainer tenant revoke acme --key owner.key",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mf.key == "" {
				return usagef("--key is required: state-changing commands are signed")
			}
			priv, err := trust.LoadPrivateKey(mf.key)
			if err != nil {
				return usageError{err}
			}
			signed, err := trust.SignCommand(trust.Command{Verb: device.VerbTenantRevoke, Target: args[0], Counter: trust.NewCounter()}, priv)
			if err != nil {
				return err
			}
			return mf.with(cmd.Context(), func(c *coap.Client) error {
				res, err := c.Exec(cmd.Context(), signed)
				if err != nil {
					return err
				}
				var r struct {
					Revoked string   `json:"revoked"`
					Stopped []string `json:"stopped"`
				}
				if err := json.Unmarshal(res, &r); err != nil {
					return fmt.Errorf("%w: revoke result: %w", mgmt.ErrInvalid, err)
				}
				if mf.asJSON {
					return writeJSON(cmd.OutOrStdout(), r)
				}
				stopped := "no container was running"
				if len(r.Stopped) > 0 {
					stopped = "stopped " + strings.Join(r.Stopped, ", ")
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "revoked tenant %s: %s\n", r.Revoked, stopped)
				return err
			})
		},
	}
	mf.add(cmd, true)
	mf.addJSON(cmd)
	return cmd
}
