package mqttc

import (
	"fmt"
	"net"
	"net/url"
)

// Endpoint is a parsed broker URL.
type Endpoint struct {
	Addr     string // host:port
	Host     string // for TLS server name checks
	TLS      bool
	User     string
	Password string
	HasUser  bool
	HasPass  bool
}

// ParseURL parses a broker URL: mqtt:// or tcp:// (port 1883 by default),
// mqtts://, ssl:// or tls:// (TLS, port 8883 by default), with an
// optional user[:password]@ and nothing after the host but "/".
func ParseURL(raw string) (Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	var e Endpoint
	port := "1883"
	switch u.Scheme {
	case "mqtt", "tcp":
	case "mqtts", "ssl", "tls":
		e.TLS, port = true, "8883"
	default:
		return Endpoint{}, fmt.Errorf("%w: %q: scheme must be mqtt, tcp, mqtts, ssl or tls", ErrBadURL, raw)
	}
	if u.Hostname() == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, fmt.Errorf("%w: %q: want scheme://host[:port]", ErrBadURL, raw)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	e.Host = u.Hostname()
	e.Addr = net.JoinHostPort(e.Host, port)
	if u.User != nil {
		e.User, e.HasUser = u.User.Username(), true
		e.Password, e.HasPass = u.User.Password()
	}
	return e, nil
}
