package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/coap"
	"github.com/tinycontainer/tinycontainer/trust"
)

// defaultDevice is the device address of the management verbs when
// neither --device nor the environment variable deviceEnv names one.
const (
	defaultDevice = "127.0.0.1:5683"
	deviceEnv     = "TINYCONTAINER_DEVICE"
)

// deviceDefault is the default of --device: $TINYCONTAINER_DEVICE when set.
func deviceDefault() string {
	if a := strings.TrimSpace(os.Getenv(deviceEnv)); a != "" {
		return a
	}
	return defaultDevice
}

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
	cmd.Flags().StringVar(&f.addr, "device", deviceDefault(), "the device's CoAP address (default from $"+deviceEnv+" when set)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the device")
	f.psk.add(cmd)
	if signed {
		cmd.Flags().StringVar(&f.key, "key", "", "private key signing the command (the owner's or the tenant's)")
	}
}

func (f *mgmtFlags) addJSON(cmd *cobra.Command) { addJSONFlag(cmd, &f.asJSON) }

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

// exec signs and sends one command and returns the device's JSON result.
func (f *mgmtFlags) exec(cmd *cobra.Command, verb, target string, body []byte) ([]byte, error) {
	if f.key == "" {
		return nil, usagef("--key is required: state-changing commands are signed")
	}
	priv, err := trust.LoadPrivateKey(f.key)
	if err != nil {
		return nil, usageError{err}
	}
	signed, err := trust.SignCommand(trust.Command{Verb: verb, Target: target, Body: body, Counter: trust.NewCounter()}, priv)
	if err != nil {
		return nil, err
	}
	c, err := f.dial(cmd.Context())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Exec(cmd.Context(), signed)
}

// execShow runs a signed command and prints its result: the device's JSON
// as is with --json, else one sentence made by human from the result
// decoded into T.
func execShow[T any](cmd *cobra.Command, f *mgmtFlags, verb, target string, body []byte, human func(w io.Writer, v T)) error {
	res, err := f.exec(cmd, verb, target, body)
	if err != nil {
		return err
	}
	var v T
	if err := json.Unmarshal(res, &v); err != nil {
		return fmt.Errorf("%w: the device's answer is not what %s returns: %w", mgmt.ErrUnavailable, verb, err)
	}
	if f.asJSON {
		var raw any
		_ = json.Unmarshal(res, &raw)
		return writeJSON(cmd.OutOrStdout(), raw)
	}
	human(cmd.OutOrStdout(), v)
	return nil
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
