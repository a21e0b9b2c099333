package mqttc

import (
	"errors"
	"testing"
)

func TestParseURL(t *testing.T) {
	good := map[string]Endpoint{
		"mqtt://127.0.0.1:1883":   {Addr: "127.0.0.1:1883", Host: "127.0.0.1"},
		"tcp://localhost:2000":    {Addr: "localhost:2000", Host: "localhost"},
		"mqtt://broker":           {Addr: "broker:1883", Host: "broker"},
		"mqtt://u:p@[::1]:1884/":  {Addr: "[::1]:1884", Host: "::1", User: "u", Password: "p", HasUser: true, HasPass: true},
		"tcp://example.org:1883/": {Addr: "example.org:1883", Host: "example.org"},
		"mqtts://h":               {Addr: "h:8883", Host: "h", TLS: true},
		"ssl://h:9000":            {Addr: "h:9000", Host: "h", TLS: true},
	}
	for in, want := range good {
		if got, err := ParseURL(in); err != nil || got != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "127.0.0.1:1883", "ws://h", "mqtt://", "mqtt://h/x", "mqtt://h?a=b", "mqtt://h#f", "mqtt://h:99999x", "mqtt:opaque"} {
		if _, err := ParseURL(in); !errors.Is(err, ErrBadURL) {
			t.Errorf("ParseURL(%q) = %v, want ErrBadURL", in, err)
		}
	}
}
