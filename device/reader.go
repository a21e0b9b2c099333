package device

import (
	"context"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// Reader gives the read-only calls of mgmt.Device on a device that has no
// management (the one `demo` and `run` build), so a dashboard reads it as
// it reads a managed one.
func (d *Device) Reader() mgmt.Reader { return reader{d} }

type reader struct{ d *Device }

func (r reader) List(context.Context) ([]mgmt.ContainerStatus, error) { return r.d.List(), nil }

func (r reader) Logs(_ context.Context, name string, after uint64, max int) ([]mgmt.LogLine, error) {
	if name != "" {
		if _, err := r.d.Container(name); err != nil {
			return nil, err
		}
	}
	return r.d.Logs(name, after, max), nil
}

func (r reader) WatchLogs(ctx context.Context, name string, after uint64) (<-chan mgmt.LogLine, error) {
	if name != "" {
		if _, err := r.d.Container(name); err != nil {
			return nil, err
		}
	}
	return r.d.WatchLogs(ctx, name, after), nil
}

func (r reader) Audit(_ context.Context, limit int) ([]mgmt.AuditEntry, error) {
	return r.d.Audit(limit), nil
}

func (r reader) Info(context.Context) (mgmt.DeviceInfo, error) { return r.d.Info(), nil }
