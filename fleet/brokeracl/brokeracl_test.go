package brokeracl

import (
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinycontainer/tinycontainer/internal/testbroker"
)

func testFleet() Fleet {
	return Fleet{
		Tenants: []Tenant{{Name: "acme", Topics: []string{"acme/#"}}, {Name: "globex", Topics: []string{"globex/+/cmd"}}},
		Devices: []string{"dev-1", "dev-2"},
	}
}

func TestHashPasswordIsMosquittoFormat(t *testing.T) {
	h, err := HashPassword("secret", strings.NewReader("0123456789ab"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 5 || parts[1] != "7" || parts[2] != "101" {
		t.Fatalf("hash %q", h)
	}
	salt, _ := base64.StdEncoding.DecodeString(parts[3])
	key, _ := pbkdf2.Key(sha512.New, "secret", salt, 101, 64)
	if string(salt) != "0123456789ab" || parts[4] != base64.StdEncoding.EncodeToString(key) {
		t.Fatalf("hash %q", h)
	}
}

func TestGenerateRefusesBadInput(t *testing.T) {
	for name, f := range map[string]Fleet{
		"no device":        {Tenants: []Tenant{{Name: "acme"}}},
		"device _owner":    {Devices: []string{"_owner"}},
		"device with #":    {Devices: []string{"dev#1"}},
		"device with /":    {Devices: []string{"a/b"}},
		"twice":            {Devices: []string{"d", "d"}},
		"tenant name":      {Tenants: []Tenant{{Name: "Acme"}}, Devices: []string{"d"}},
		"topic in tc/":     {Tenants: []Tenant{{Name: "acme", Topics: []string{"tc/v1/dev/x/status"}}}, Devices: []string{"d"}},
		"topic #":          {Tenants: []Tenant{{Name: "acme", Topics: []string{"#"}}}, Devices: []string{"d"}},
		"topic +/x":        {Tenants: []Tenant{{Name: "acme", Topics: []string{"+/x"}}}, Devices: []string{"d"}},
		"topic $SYS":       {Tenants: []Tenant{{Name: "acme", Topics: []string{"$SYS/#"}}}, Devices: []string{"d"}},
		"topic newline":    {Tenants: []Tenant{{Name: "acme", Topics: []string{"a\ntopic readwrite #"}}}, Devices: []string{"d"}},
		"topic pattern %u": {Tenants: []Tenant{{Name: "acme", Topics: []string{"a/%u"}}}, Devices: []string{"d"}},
		"topic a/#/b":      {Tenants: []Tenant{{Name: "acme", Topics: []string{"a/#/b"}}}, Devices: []string{"d"}},
	} {
		if _, err := Generate(f); !errors.Is(err, ErrInput) {
			t.Errorf("%s: err %v, want ErrInput", name, err)
		}
	}
}

func TestWriteRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	fs, err := Generate(testFleet())
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "passwords", "dev-1"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", st, err)
	}
	if err := fs.Write(dir); !errors.Is(err, ErrInput) {
		t.Fatalf("second write: %v", err)
	}
}

// TestACLAgainstMosquitto loads the files into a real mosquitto and tries
// what each user may and may not do.
func TestACLAgainstMosquitto(t *testing.T) {
	dir := t.TempDir()
	fs, err := Generate(testFleet())
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(dir); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// Mosquitto started as root reads these files after dropping to its
	// own user, which cannot enter a test's private temporary directory.
	br := testbroker.StartWith(t, "user root\n"+string(conf))
	as := func(user string) []string { return []string{"-u", user, "-P", fs.Passwords[user]} }
	pub := func(user, topic string, retain bool) string {
		t.Helper()
		args := append(as(user), "-q", "1", "-t", topic, "-m", "x")
		if retain {
			args = append(args, "-r")
		}
		out, err := br.PubOutput("", args...)
		if err != nil && !strings.Contains(out, "Not authorized") {
			t.Fatalf("mosquitto_pub as %s on %s: %v\n%s", user, topic, err, out)
		}
		return out
	}
	allowed := []struct{ user, topic string }{
		{"dev-1", "tc/v1/dev/dev-1/status"},
		{"dev-1", "tc/v1/dev/dev-1/reported"},
		{"dev-2", "tc/v1/dev/dev-2/status"},
		{"dev-1", "acme/kitchen/temp"},
		{"dev-2", "globex/hall/cmd"},
		{OwnerUser, "tc/v1/dev/dev-2/grant/globex"},
		{TenantUser("acme"), "tc/v1/dev/dev-1/desired/acme"},
		{TenantUser("acme"), "tc/v1/img/acme/abc"},
		{TenantUser("acme"), "tc/v1/rollout/acme/r-1"},
		{TenantUser("globex"), "tc/v1/dev/dev-1/desired/globex"},
		{TenantUser("globex"), "tc/v1/img/globex/def"},
		{TenantUser("globex"), "tc/v1/rollout/globex/r-2"},
	}
	for _, a := range allowed {
		if out := pub(a.user, a.topic, true); strings.Contains(out, "Not authorized") {
			t.Errorf("%s publishing on %s was refused: %s", a.user, a.topic, out)
		}
	}
	refused := []struct{ user, topic string }{
		{"dev-1", "tc/v1/dev/dev-2/status"},         // another device's subtree
		{"dev-1", "tc/v1/dev/dev-1/desired/acme"},   // its own desired state: tenants write it
		{"dev-1", "tc/v1/dev/dev-1/grant/acme"},     // its own grants: the owner writes them
		{"dev-1", "tc/v1/img/acme/abc"},             // images
		{"dev-1", "tc/v1/rollout/acme/r-1"},         // rollouts
		{"dev-1", "globex/hall/other"},              // beyond the grants' topics
		{"dev-1", "tc/v1/dev/_tenant-acme/status"},  // not its id
		{OwnerUser, "tc/v1/dev/dev-1/desired/acme"}, // the owner grants, tenants desire
		{OwnerUser, "tc/v1/dev/dev-1/status"},
		{TenantUser("acme"), "tc/v1/dev/dev-1/desired/globex"}, // another tenant's
		{TenantUser("acme"), "tc/v1/img/globex/def"},
		{TenantUser("acme"), "tc/v1/rollout/globex/r-2"},
		{TenantUser("acme"), "tc/v1/dev/dev-1/grant/acme"}, // its own grant
		{TenantUser("acme"), "tc/v1/dev/dev-1/status"},     // device state
		{TenantUser("acme"), "acme/kitchen/temp"},          // devices' messages
	}
	for _, r := range refused {
		if out := pub(r.user, r.topic, true); !strings.Contains(out, "Not authorized") {
			t.Errorf("%s publishing on %s was not refused: %q", r.user, r.topic, out)
		}
	}
	// Connections without a valid password are refused.
	for name, args := range map[string][]string{
		"anonymous":      {},
		"wrong password": {"-u", "dev-1", "-P", "wrong"},
		"unknown user":   {"-u", "dev-9", "-P", fs.Passwords["dev-1"]},
		"swapped":        {"-u", "dev-2", "-P", fs.Passwords["dev-1"]},
	} {
		out, err := br.PubOutput("", append(args, "-q", "1", "-t", "acme/x", "-m", "x")...)
		if err == nil || !strings.Contains(out, "Not authorized") {
			t.Errorf("%s: connected (err %v): %s", name, err, out)
		}
	}

	// Reads: each user subscribes to everything and sees only its share of
	// the retained messages above. A marker it may read, published after
	// its subscription, arrives after every retained message the broker
	// sends it.
	reads := map[string]struct {
		marker    [2]string // who publishes it, where
		see, deny []string
	}{
		"dev-1": {
			marker: [2]string{TenantUser("acme"), "tc/v1/img/acme/marker"},
			see:    []string{"tc/v1/dev/dev-1/status", "tc/v1/dev/dev-1/desired/acme", "tc/v1/dev/dev-1/desired/globex", "tc/v1/img/acme/abc", "tc/v1/rollout/globex/r-2"},
			deny:   []string{"tc/v1/dev/dev-2/", "tc/v1/dev/_"},
		},
		TenantUser("acme"): {
			marker: [2]string{TenantUser("acme"), "tc/v1/rollout/acme/marker"},
			see:    []string{"tc/v1/dev/dev-1/status", "tc/v1/dev/dev-2/status", "tc/v1/dev/dev-1/reported", "tc/v1/dev/dev-1/desired/acme", "tc/v1/img/acme/abc", "tc/v1/rollout/acme/r-1"},
			deny:   []string{"globex", "/grant/"},
		},
		OwnerUser: {
			marker: [2]string{OwnerUser, "tc/v1/dev/dev-1/grant/marker"},
			see:    []string{"tc/v1/dev/dev-2/grant/globex", "tc/v1/dev/dev-1/desired/acme", "tc/v1/rollout/globex/r-2"},
			deny:   []string{"acme/kitchen", "globex/hall"},
		},
	}
	for user, want := range reads {
		sub := br.Sub(t, "#", as(user)...)
		pub(want.marker[0], want.marker[1], false)
		seen := map[string]bool{}
		for {
			topic, _, _ := strings.Cut(sub.Next(t), " ")
			if topic == want.marker[1] {
				break
			}
			seen[topic] = true
		}
		for _, s := range want.see {
			if !seen[s] {
				t.Errorf("%s did not read %s (read %v)", user, s, seen)
			}
		}
		for topic := range seen {
			for _, d := range want.deny {
				if strings.Contains(topic, d) {
					t.Errorf("%s read %s", user, topic)
				}
			}
		}
	}
}
