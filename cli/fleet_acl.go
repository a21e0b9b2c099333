package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/fleet/brokeracl"
	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

func newFleetACLCmd() *cobra.Command {
	var (
		owner, out      string
		tenants, grants []string
		devices         []string
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "acl --owner OWNER_PUB --tenant T=PUBFILE... --device ID... [--grant GRANT_FILE...] -o DIR",
		Short: "Write mosquitto password and ACL files that fence each device and tenant in",
		Long: `Acl writes the broker's share of the fleet's security into DIR (a new or
empty directory): passwd (mosquitto's hashed password file), acl (its ACL
file, pattern rules on the user name), mosquitto.conf (the lines that load
them) and passwords/USER (each user's generated password, to hand to that
user only). User names: a device's is its id, a tenant's _tenant-T, the
owner's _owner.

A device reads only its own subtree and writes only its status and reported
state, reads its tenants' images and rollouts, and uses the message topics
its tenants' grants (--grant, checked against --owner and --tenant) let
containers publish on. A tenant writes only its own desired states, images
and rollouts, and reads device status and reported state. The owner writes
grants and reads everything. Anonymous clients get nothing.

Signatures, not these files, are what devices trust: the ACLs are defence in
depth, and keep tenants out of each other's topics.`,
		Example: `  tinycontainer fleet acl --owner owner.pub --tenant acme=acme.pub --grant acme.grant \
    --device dev-1 --device dev-2 -o broker
  mosquitto -c broker/mosquitto.conf      # or include its lines in yours`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if owner == "" || out == "" || len(devices) == 0 {
				return usagef("--owner, --device and -o are required")
			}
			ownerPub, err := trust.LoadPublicKey(owner)
			if err != nil {
				return usageError{err}
			}
			fl := brokeracl.Fleet{}
			keys := map[string]string{} // tenant -> key id
			index := map[string]int{}
			for _, t := range tenants {
				name, file, ok := strings.Cut(t, "=")
				if !ok || name == "" || file == "" {
					return usagef("--tenant %q: want T=PUBFILE", t)
				}
				pub, err := trust.LoadPublicKey(file)
				if err != nil {
					return usagef("--tenant %s: %v", name, err)
				}
				keys[name] = trust.KeyID(pub)
				index[name] = len(fl.Tenants)
				fl.Tenants = append(fl.Tenants, brokeracl.Tenant{Name: name})
			}
			for _, g := range grants {
				tenant, topics, err := grantTopics(g, ownerPub)
				if err != nil {
					return err
				}
				i, ok := index[tenant.name]
				if !ok {
					return usagef("--grant %s: tenant %s has no --tenant", g, tenant.name)
				}
				if keys[tenant.name] != tenant.keyID {
					return usagef("--grant %s: granted to key %s, --tenant %s gives key %s", g, tenant.keyID, tenant.name, keys[tenant.name])
				}
				fl.Tenants[i].Topics = append(fl.Tenants[i].Topics, topics...)
			}
			for _, d := range devices {
				fl.Devices = append(fl.Devices, strings.Split(d, ",")...)
			}
			files, err := brokeracl.Generate(fl)
			if err != nil {
				return usageError{err}
			}
			if err := files.Write(out); err != nil {
				if errors.Is(err, brokeracl.ErrInput) {
					return usageError{err}
				}
				return err
			}
			abs, _ := filepath.Abs(out)
			if asJSON {
				users := make([]string, 0, len(files.Passwords))
				for u := range files.Passwords {
					users = append(users, u)
				}
				return writeJSON(cmd.OutOrStdout(), map[string]any{"dir": abs, "passwd": filepath.Join(abs, "passwd"),
					"acl": filepath.Join(abs, "acl"), "conf": filepath.Join(abs, "mosquitto.conf"), "users": len(users)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/{passwd,acl,mosquitto.conf} and %d passwords in %s/passwords\n", abs, len(files.Passwords), abs)
			fmt.Fprintf(cmd.OutOrStdout(), "users: %s (owner), %d tenants as _tenant-NAME, %d devices by id\n", brokeracl.OwnerUser, len(fl.Tenants), len(fl.Devices))
			return nil
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "the owner's public key file")
	cmd.Flags().StringArrayVar(&tenants, "tenant", nil, "T=PUBFILE: a tenant and its public key (repeatable)")
	cmd.Flags().StringArrayVar(&grants, "grant", nil, "a tenant grant file (from tenant grant): its msg/ patterns become the devices' message topics (repeatable)")
	cmd.Flags().StringArrayVar(&devices, "device", nil, "device id, or ids separated by commas (repeatable)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "directory to write into (must not hold these files yet)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}

type grantedTenant struct{ name, keyID string }

// grantTopics opens an owner-signed grant and returns the MQTT filters its
// msg/ patterns allow publishing on.
func grantTopics(file string, owner ed25519.PublicKey) (grantedTenant, []string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return grantedTenant{}, nil, usageError{err}
	}
	g, err := trust.OpenGrant(b, owner)
	if err != nil {
		return grantedTenant{}, nil, usagef("--grant %s: %v", file, err)
	}
	c, err := meta.ParseCeiling(g.CeilingJSON)
	if err != nil {
		return grantedTenant{}, nil, usagef("--grant %s: %v", file, err)
	}
	var topics []string
	for _, r := range c.Allow {
		if t, ok := strings.CutPrefix(r.Name, "msg/"); ok && r.Ops.Has(abi.OpPublish) {
			topics = append(topics, t)
		}
	}
	return grantedTenant{name: c.Tenant, keyID: g.TenantKeyID}, topics, nil
}
