package cli

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/runtime"
	"github.com/tinycontainer/tinycontainer/trust"
)

func newKeygenCmd() *cobra.Command {
	var (
		out    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "keygen --out NAME",
		Short:   "Write a new Ed25519 key pair as NAME.key and NAME.pub",
		Example: "  tinycontainer keygen --out owner\n  tinycontainer keygen --out acme",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out NAME is required")
			}
			// Never overwrite a key: its owner would be locked out of
			// every device that trusts it.
			for _, f := range []string{out + ".key", out + ".pub"} {
				if _, err := os.Lstat(f); err == nil {
					return fmt.Errorf("%s already exists: keygen never overwrites a key; choose another --out name, or move the old pair away first", f)
				}
			}
			_, priv, err := trust.GenerateKey()
			if err != nil {
				return err
			}
			if err := trust.WriteKeyPair(out, priv); err != nil {
				return err
			}
			id := trust.KeyID(priv.Public().(ed25519.PublicKey))
			res := map[string]string{"private_key": out + ".key", "public_key": out + ".pub", "key_id": id}
			return emit(cmd, asJSON, res, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %s.key (private: keep it secret) and %s.pub (public), key id %s\n", out, out, id)
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "base name of the key files")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newPackCmd() *cobra.Command {
	var (
		manifest, key, out, maxCode string
		asJSON                      bool
	)
	cmd := &cobra.Command{
		Use:   "pack --manifest F --key F -o F",
		Short: "Build a signed image from a manifest and its code",
		Long: `Pack reads a manifest (YAML or JSON; every field in docs/manifest.md), the
code file it names and the tenant's private key, and writes an image signed
by that key, for deploy (or run --trust). Code over the tenant's max code
size (1 MiB unless its grant allows more: --max-code) is refused here, as
the device would refuse it.`,
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
			// unless its grant says more, never over 4 MiB): so does pack,
			// with the same check.
			limit := uint64(runtime.DefaultCodeLimit)
			if maxCode != "" {
				n, err := meta.ParseSize(maxCode)
				if err != nil || n == 0 || n > runtime.MaxCodeLimit {
					return usagef("--max-code: want a size from 1 byte to %d bytes, as the tenant's grant allows (%q)", runtime.MaxCodeLimit, maxCode)
				}
				limit = n
			}
			if err := (runtime.Config{CodeLimit: limit}).CheckCode(code); err != nil {
				hint := ""
				if maxCode == "" && len(code) <= runtime.MaxCodeLimit {
					hint = fmt.Sprintf(" (if the tenant's grant allows more, say so with --max-code %d or more)", len(code))
				}
				return usagef("%s: %v%s", manifest, err, hint)
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
			keyID := trust.KeyID(priv.Public().(ed25519.PublicKey))
			res := map[string]any{"file": out, "name": m.Name, "tenant": m.Tenant, "version": m.Version,
				"runtime": m.Runtime, "code_bytes": len(code), "key_id": keyID}
			return emit(cmd, asJSON, res, func(w io.Writer) {
				fmt.Fprintf(w, "packed %s v%d (tenant %s, %s, %d bytes of code) into %s, signed by %s\n",
					m.Name, m.Version, m.Tenant, m.Runtime, len(code), out, keyID)
			})
		},
	}
	cmd.Flags().StringVar(&manifest, "manifest", "", "manifest file (YAML or JSON)")
	cmd.Flags().StringVar(&maxCode, "max-code", "", "the tenant's max code size when its grant allows more than the default 1MiB (at most 4MiB)")
	addJSONFlag(cmd, &asJSON)
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
		asJSON                     bool
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
			if err := os.WriteFile(out, g, 0o644); err != nil {
				return err
			}
			return grantWritten(cmd, asJSON, out, cj, trust.KeyID(tkey), trust.KeyID(okey.Public().(ed25519.PublicKey)))
		},
	}
	grant.Flags().StringVar(&ownerKey, "owner-key", "", "the owner's private key file")
	grant.Flags().StringVar(&tenant, "tenant", "", "tenant name")
	grant.Flags().StringVar(&pub, "pub", "", "the tenant's public key file")
	cf.add(grant)
	grant.Flags().StringVarP(&out, "out", "o", "", "output file")
	addJSONFlag(grant, &asJSON)
	return grant
}

// grantWritten reports a grant written to file: the ceiling (its JSON form,
// ceilingJSON), whose key it is for and who signed it.
func grantWritten(cmd *cobra.Command, asJSON bool, file string, ceilingJSON []byte, tenantKey, ownerKey string) error {
	var c map[string]any
	if err := json.Unmarshal(ceilingJSON, &c); err != nil {
		return err
	}
	res := map[string]any{"file": file, "tenant_key": tenantKey, "owner_key": ownerKey, "ceiling": c}
	return emit(cmd, asJSON, res, func(w io.Writer) {
		fmt.Fprintf(w, "wrote %s: tenant %v (key %s), signed by owner key %s\n", file, c["tenant"], tenantKey, ownerKey)
		var allow []string
		if rules, ok := c["allow"].([]any); ok {
			for _, r := range rules {
				if m, ok := r.(map[string]any); ok {
					allow = append(allow, fmt.Sprintf("%v %v", m["name"], m["ops"]))
				}
			}
		}
		if len(allow) == 0 {
			allow = []string{"(no endpoint)"}
		}
		fmt.Fprintf(w, "  may use       %s\n", strings.Join(allow, ", "))
		keys := make([]string, 0, len(c))
		for k := range c {
			if k != "tenant" && k != "allow" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %-13s %v\n", k, c[k])
		}
	})
}
