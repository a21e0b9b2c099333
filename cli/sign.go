package cli

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/trust"
)

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "keygen --out NAME",
		Short:   "Write a new Ed25519 key pair as NAME.key and NAME.pub",
		Example: "  tinycontainer keygen --out owner\n  tinycontainer keygen --out acme",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out NAME is required")
			}
			_, priv, err := trust.GenerateKey()
			if err != nil {
				return err
			}
			if err := trust.WriteKeyPair(out, priv); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key and %s.pub (key id %s)\n", out, out, trust.KeyID(priv.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "base name of the key files")
	return cmd
}

func newPackCmd() *cobra.Command {
	var manifest, key, out string
	cmd := &cobra.Command{
		Use:     "pack --manifest F --key F -o F",
		Short:   "Build a signed image from a manifest and its code",
		Example: "  tinycontainer pack --manifest examples/thermo/thermo.yaml --key acme.key -o thermo.img",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if manifest == "" || key == "" || out == "" {
				return usagef("--manifest, --key and -o are required")
			}
			m, code, err := loadManifest(manifest)
			if err != nil {
				return usageError{err}
			}
			// The device refuses code over the tenant's max code (1 MiB
			// unless its grant says more, never over 4 MiB).
			if err := (runtime.Config{CodeLimit: runtime.MaxCodeLimit}).CheckCode(code); err != nil {
				return usageError{err}
			}
			priv, err := trust.LoadPrivateKey(key)
			if err != nil {
				return usageError{err}
			}
			mj, err := json.Marshal(m)
			if err != nil {
				return err
			}
			img, err := trust.Pack(mj, code, priv)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, img, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s v%d (%s, %d bytes of code), signed by %s\n",
				out, m.Name, m.Version, m.Runtime, len(code), trust.KeyID(priv.Public().(ed25519.PublicKey)))
			if (runtime.Config{}).CheckCode(code) != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "note: the code is over the default max code size of %d bytes: the tenant's grant needs --max-code %d or more\n",
					runtime.DefaultCodeLimit, len(code))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manifest, "manifest", "", "manifest file (YAML or JSON)")
	cmd.Flags().StringVar(&key, "key", "", "the tenant's private key file")
	cmd.Flags().StringVarP(&out, "out", "o", "", "output image file")
	return cmd
}

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "inspect IMAGE",
		Short:   "Show what is in a signed image (without trusting it)",
		Example: "  tinycontainer inspect thermo.img\n  tinycontainer inspect --json thermo.img",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			img, err := trust.OpenImage(b)
			if err != nil {
				return usageError{err}
			}
			m, err := meta.Parse(img.Manifest)
			if err != nil {
				return usageError{fmt.Errorf("image metadata: %w", err)}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, map[string]any{"key_id": img.KeyID, "code_sha256": fmt.Sprintf("%x", img.Digest),
					"code_bytes": len(img.Code), "manifest": m})
			}
			y, err := m.YAML()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "signed by key %s\ncode: %d bytes, sha256 %x\nmetadata:\n%s", img.KeyID, len(img.Code), img.Digest, y)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}

func newTenantGrantCmd() *cobra.Command {
	var (
		ownerKey, tenant, pub, out string
		cf                         ceilingFlags
	)
	grant := &cobra.Command{
		Use:   "grant --owner-key F --tenant T --pub F --allow 'PATTERN:op,op' ... -o F",
		Short: "Write an owner-signed ceiling for a tenant",
		Long: `Grant writes the most a tenant may ever ask for on the owner's devices:
endpoint patterns (MQTT wildcards) with ops, maximum memory, storage, budget,
priority and code size, minimum period, and optionally a CPU share and call
rates per endpoint pattern. Metadata beyond it is refused at deploy and at
every live update; rates and the CPU share are enforced while containers run.`,
		Example: `  tinycontainer tenant grant --owner-key owner.key --tenant acme --pub acme.pub \
    --allow 'sensor/+:read' --allow 'msg/acme/#:publish' --allow 'log:write' \
    --max-memory 128KiB --max-storage 4KiB --max-budget 10ms --min-period 50ms \
    --max-priority 5 --max-cpu 25% --max-rate 'msg/acme/#=50/s' -o acme.grant`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ownerKey == "" || tenant == "" || pub == "" || out == "" {
				return usagef("--owner-key, --tenant, --pub and -o are required")
			}
			c, err := cf.ceiling(tenant)
			if err != nil {
				return err
			}
			cj, err := json.Marshal(c)
			if err != nil {
				return err
			}
			okey, err := trust.LoadPrivateKey(ownerKey)
			if err != nil {
				return usageError{err}
			}
			tkey, err := trust.LoadPublicKey(pub)
			if err != nil {
				return usageError{err}
			}
			g, err := trust.SignGrant(cj, tkey, okey)
			if err != nil {
				return err
			}
			return os.WriteFile(out, g, 0o644)
		},
	}
	grant.Flags().StringVar(&ownerKey, "owner-key", "", "the owner's private key file")
	grant.Flags().StringVar(&tenant, "tenant", "", "tenant name")
	grant.Flags().StringVar(&pub, "pub", "", "the tenant's public key file")
	cf.add(grant)
	grant.Flags().StringVarP(&out, "out", "o", "", "output file")
	return grant
}
