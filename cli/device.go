package cli

import (
	"context"

	"github.com/tinycontainer/tinycontainer/device"
)

// newDevice builds a device from the shared device flags.
func newDevice(ctx context.Context, df *deviceFlags, opts device.Options) (*device.Device, error) {
	opts.MQTT = df.mqtt
	return device.New(ctx, opts)
}
