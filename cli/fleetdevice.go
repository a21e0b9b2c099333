package cli

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/device"
	"github.com/tinycontainer/tinycontainer/fleet/doc"
	"github.com/tinycontainer/tinycontainer/internal/buildinfo"
	mfleet "github.com/tinycontainer/tinycontainer/mgmt/fleet"
)

// deviceFleetFlags are the device's fleet flags (SPEC section 8).
type deviceFleetFlags struct {
	url      string
	id       string
	labels   []string
	user     string
	passFile string
}

func (f *deviceFleetFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "fleet", "", "manage this device through an MQTT v5 broker, e.g. mqtt://127.0.0.1:1883 or mqtts://host (see docs/fleet.md)")
	cmd.Flags().StringVar(&f.id, "id", "", "the device's id in the fleet and in MQTT client ids (tc-ID-fleet, tc-ID-msg)")
	cmd.Flags().StringArrayVar(&f.labels, "label", nil, "a label K=V of this device for fleet selectors (repeatable)")
	cmd.Flags().StringVar(&f.user, "fleet-user", "", "user name at the fleet broker")
	cmd.Flags().StringVar(&f.passFile, "fleet-password-file", "", "file holding the password at the fleet broker")
}

// check validates the flags before anything starts (exit 2 on bad input).
func (f *deviceFleetFlags) check() error {
	if f.id != "" {
		if err := doc.ValidID(f.id); err != nil {
			return usagef("--id: %v", err)
		}
	}
	if f.url == "" {
		if len(f.labels) > 0 || f.user != "" || f.passFile != "" {
			return usagef("--label, --fleet-user and --fleet-password-file need --fleet")
		}
		return nil
	}
	if f.id == "" {
		return usagef("--fleet needs --id ID")
	}
	o, err := f.options()
	if err != nil {
		return err
	}
	if err := o.Check(); err != nil {
		return usageError{err}
	}
	return nil
}

func (f *deviceFleetFlags) options() (mfleet.Options, error) {
	o := mfleet.Options{URL: f.url, ID: f.id, Labels: map[string]string{}, User: f.user, Version: buildinfo.Version()}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return o, usagef("--label %q: want K=V", l)
		}
		o.Labels[k] = v
	}
	if err := doc.ValidLabels(o.Labels); err != nil {
		return o, usagef("--label: %v", err)
	}
	if f.passFile != "" {
		b, err := os.ReadFile(f.passFile)
		if err != nil {
			return o, usagef("--fleet-password-file: %v", err)
		}
		o.Password = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	return o, nil
}

// startFleet starts the fleet adapter when --fleet is set; the returned
// stop publishes "offline" and disconnects.
func (f *deviceFleetFlags) start(mg *device.Manager, log *slog.Logger) (stop func(), err error) {
	if f.url == "" {
		return func() {}, nil
	}
	o, err := f.options()
	if err != nil {
		return nil, err
	}
	o.Logger = log
	a, err := mfleet.Start(mg, o)
	if err != nil {
		return nil, err
	}
	log.Info("fleet adapter started", "broker", f.url, "id", f.id, "client", "tc-"+f.id+"-fleet")
	return a.Close, nil
}
