package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
	"github.com/tinycontainer/tinycontainer/trust"
)

const defaultDevice = "127.0.0.1:5683"

// pskFlags select CoAP over DTLS with a pre-shared key.
type pskFlags struct {
	file     string
	identity string
}

func (p *pskFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.file, "psk-file", "", "DTLS pre-shared key: a file holding at least 16 bytes (CoAP over DTLS instead of plain CoAP)")
	cmd.Flags().StringVar(&p.identity, "psk-identity", "tinycontainer", "DTLS PSK identity")
}

// load reads the key; nil when DTLS is not asked for.
func (p *pskFlags) load() ([]byte, error) {
	if p.file == "" {
		return nil, nil
	}
	key, err := os.ReadFile(p.file)
	if err != nil {
		return nil, usageError{err}
	}
	key = bytes.TrimSpace(key)
	if len(key) < 16 {
		return nil, usagef("--psk-file: the key must be at least 16 bytes, it has %d", len(key))
	}
	return key, nil
}

// mgmtFlags are the flags of commands that talk to a device.
type mgmtFlags struct {
	addr    string
	key     string
	timeout time.Duration
	asJSON  bool
	psk     pskFlags
}

func (f *mgmtFlags) add(cmd *cobra.Command, signed bool) {
	cmd.Flags().StringVar(&f.addr, "device", defaultDevice, "the device's CoAP address")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the device")
	f.psk.add(cmd)
	if signed {
		cmd.Flags().StringVar(&f.key, "key", "", "private key signing the command (the owner's or the tenant's)")
	}
}

func (f *mgmtFlags) addJSON(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "JSON output")
}

func (f *mgmtFlags) dial(ctx context.Context) (*coap.Client, error) {
	key, err := f.psk.load()
	if err != nil {
		return nil, err
	}
	return coap.Dial(ctx, f.addr, coap.ClientOptions{Timeout: f.timeout, PSK: key, PSKIdentity: f.psk.identity})
}

// with runs do with a client of the device, closed afterwards.
func (f *mgmtFlags) with(ctx context.Context, do func(c *coap.Client) error) error {
	c, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return do(c)
}

// exec signs and sends one command, then prints its JSON result.
func (f *mgmtFlags) exec(cmd *cobra.Command, verb, target string, body []byte) error {
	if f.key == "" {
		return usagef("--key is required: state-changing commands are signed")
	}
	priv, err := trust.LoadPrivateKey(f.key)
	if err != nil {
		return usageError{err}
	}
	signed, err := trust.SignCommand(trust.Command{Verb: verb, Target: target, Body: body, Counter: trust.NewCounter()}, priv)
	if err != nil {
		return err
	}
	c, err := f.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Exec(cmd.Context(), signed)
	if err != nil {
		return err
	}
	var v any
	if json.Unmarshal(res, &v) == nil {
		return writeJSON(cmd.OutOrStdout(), v)
	}
	_, err = cmd.OutOrStdout().Write(res)
	return err
}

// show prints containers as a JSON array (never null) or a table.
func (f *mgmtFlags) show(cmd *cobra.Command, cs []mgmt.ContainerStatus) error {
	if f.asJSON {
		if cs == nil {
			cs = []mgmt.ContainerStatus{}
		}
		return writeJSON(cmd.OutOrStdout(), cs)
	}
	printTable(cmd.OutOrStdout(), cs)
	return nil
}
