// Package brokeracl writes a mosquitto password file and ACL file for a
// fleet (`tinycontainer fleet acl`): the broker's share of the fleet's
// security, defence in depth behind the signatures devices check.
//
// Users and what they reach (topics under tc/v1/):
//   - a device, user name = its id: reads its own subtree dev/{id}/# and
//     writes only dev/{id}/status and dev/{id}/reported (pattern ACLs on
//     %u, so one rule serves every device); reads the images and rollouts
//     of the fleet's tenants; reads and writes the message topics the
//     tenants' grants let containers publish on;
//   - a tenant, user name _tenant-{T}: writes dev/+/desired/{T},
//     img/{T}/# and rollout/{T}/#, reads those and every device's status
//     and reported state (a rollout watches health);
//   - the owner, user name _owner: writes dev/+/grant/+, reads tc/v1/#.
//
// Owner and tenant user names start with '_', which no device id may, so
// the device patterns never give them a real device's subtree.
package brokeracl

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tinycontainer/tinycontainer/internal/lazyre"
)

// ErrInput: a bad tenant, device or topic; the error says which.
var ErrInput = errors.New("brokeracl: bad input")

// OwnerUser is the owner's user name.
const OwnerUser = "_owner"

// TenantUser is the user name of tenant t.
func TenantUser(t string) string { return "_tenant-" + t }

// Tenant is a tenant of the fleet and the message topics its grant lets
// containers use (MQTT filters, the part after msg/).
type Tenant struct {
	Name   string
	Topics []string
}

// Fleet is what the files describe.
type Fleet struct {
	Tenants []Tenant
	Devices []string
}

var (
	nameRE   = lazyre.New(`^[a-z0-9][a-z0-9-]{0,31}$`)
	deviceRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

func (f *Fleet) validate() error {
	seen := map[string]bool{}
	for _, t := range f.Tenants {
		if !nameRE().MatchString(t.Name) {
			return fmt.Errorf("%w: tenant name %q", ErrInput, t.Name)
		}
		if seen["t/"+t.Name] {
			return fmt.Errorf("%w: tenant %s given twice", ErrInput, t.Name)
		}
		seen["t/"+t.Name] = true
		for _, tp := range t.Topics {
			if err := checkFilter(tp); err != nil {
				return fmt.Errorf("%w: tenant %s: message topic %q: %v", ErrInput, t.Name, tp, err)
			}
		}
	}
	if len(f.Devices) == 0 {
		return fmt.Errorf("%w: no device", ErrInput)
	}
	for _, d := range f.Devices {
		if !deviceRE().MatchString(d) {
			return fmt.Errorf("%w: device id %q (letters, digits, '.', '_', '-'; a letter or digit first; at most 64)", ErrInput, d)
		}
		if seen["d/"+d] {
			return fmt.Errorf("%w: device %s given twice", ErrInput, d)
		}
		seen["d/"+d] = true
	}
	return nil
}

// checkFilter accepts an MQTT topic filter that stays out of the fleet's
// own tree and $SYS, with no characters that would break an ACL line.
func checkFilter(f string) error {
	switch {
	case f == "" || len(f) > 256:
		return errors.New("empty or longer than 256 bytes")
	case strings.ContainsAny(f, " \t\r\n\x00%"):
		return errors.New("blank, control or % character")
	case f == "#" || f == "+/#" || strings.HasPrefix(f, "tc/") || strings.HasPrefix(f, "+/") || strings.HasPrefix(f, "$"):
		return errors.New("reaches the fleet's own topics or $SYS")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) || strings.Contains(l, "+") && l != "+" {
			return errors.New("misplaced wildcard")
		}
	}
	return nil
}

// Files are the broker configuration: Passwd and ACL for mosquitto's
// password_file and acl_file, a Conf snippet naming them, and the
// generated password of each user (to hand to that user only).
type Files struct {
	Passwd    []byte
	ACL       []byte
	Passwords map[string]string // user -> password
}

// Generate builds the files with fresh random passwords.
func Generate(f Fleet) (*Files, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	users := []string{OwnerUser}
	for _, t := range f.Tenants {
		users = append(users, TenantUser(t.Name))
	}
	users = append(users, f.Devices...)
	out := &Files{Passwords: map[string]string{}}
	var pw strings.Builder
	for _, u := range users {
		p, err := randomPassword(rand.Reader)
		if err != nil {
			return nil, err
		}
		h, err := HashPassword(p, rand.Reader)
		if err != nil {
			return nil, err
		}
		out.Passwords[u] = p
		fmt.Fprintf(&pw, "%s:%s\n", u, h)
	}
	out.Passwd = []byte(pw.String())
	out.ACL = []byte(acl(f))
	return out, nil
}

func acl(f Fleet) string {
	var b strings.Builder
	b.WriteString(`# TinyContainer fleet ACL (written by tinycontainer fleet acl).
# Anonymous clients get nothing. Pattern rules apply to every user; owner and
# tenant user names start with '_', which no device id may.

# Every device: its own subtree, writing only its status and reported state.
pattern read tc/v1/dev/%u/#
pattern write tc/v1/dev/%u/status
pattern write tc/v1/dev/%u/reported

`)
	fmt.Fprintf(&b, "user %s\ntopic read tc/v1/#\ntopic write tc/v1/dev/+/grant/+\n\n", OwnerUser)
	tenants := slices.Clone(f.Tenants)
	slices.SortFunc(tenants, func(a, b Tenant) int { return strings.Compare(a.Name, b.Name) })
	for _, t := range tenants {
		fmt.Fprintf(&b, "user %s\n", TenantUser(t.Name))
		fmt.Fprintf(&b, "topic readwrite tc/v1/dev/+/desired/%s\n", t.Name)
		fmt.Fprintf(&b, "topic readwrite tc/v1/img/%s/#\n", t.Name)
		fmt.Fprintf(&b, "topic readwrite tc/v1/rollout/%s/#\n", t.Name)
		b.WriteString("topic read tc/v1/dev/+/status\ntopic read tc/v1/dev/+/reported\n\n")
	}
	// What every device shares: the tenants' images and rollouts, and the
	// message topics their grants allow.
	var shared strings.Builder
	var topics []string
	for _, t := range tenants {
		fmt.Fprintf(&shared, "topic read tc/v1/img/%s/#\ntopic read tc/v1/rollout/%s/#\n", t.Name, t.Name)
		topics = append(topics, t.Topics...)
	}
	slices.Sort(topics)
	for _, tp := range slices.Compact(topics) {
		fmt.Fprintf(&shared, "topic readwrite %s\n", tp)
	}
	devices := slices.Clone(f.Devices)
	slices.Sort(devices)
	for _, d := range devices {
		fmt.Fprintf(&b, "user %s\n%s\n", d, shared.String())
	}
	return b.String()
}

// Conf is a mosquitto.conf snippet using the files in dir.
func Conf(dir string) string {
	return fmt.Sprintf("# TinyContainer fleet: include in mosquitto.conf (or start mosquitto -c with it)\nallow_anonymous false\npassword_file %s\nacl_file %s\n",
		filepath.Join(dir, "passwd"), filepath.Join(dir, "acl"))
}

// Write puts the files in dir: passwd, acl, mosquitto.conf and one
// passwords/USER file per user (mode 0600, to hand to that user only),
// refusing to overwrite anything already there. passwd and acl are
// world-readable (0644) so that mosquitto, which drops root for its own
// user, can read them: they hold no secret (the hashes are of 128-bit
// random passwords).
func (fs *Files) Write(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(abs, "passwords"), 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"passwd": fs.Passwd, "acl": fs.ACL, "mosquitto.conf": []byte(Conf(abs))}
	for u, p := range fs.Passwords {
		files[filepath.Join("passwords", u)] = []byte(p + "\n")
	}
	for name, data := range files {
		mode := os.FileMode(0o600)
		if name == "passwd" || name == "acl" || name == "mosquitto.conf" {
			mode = 0o644
		}
		if err := writeNew(filepath.Join(abs, name), data, mode); err != nil {
			return err
		}
	}
	return nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s exists; write into a new directory", ErrInput, path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// randomPassword is 128 random bits, base64url.
func randomPassword(r io.Reader) (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// pbkdf2Iterations: mosquitto_passwd's default. The passwords are 128
// random bits, so their strength does not rest on the iteration count, and
// a broker checks a thousand devices reconnecting at once cheaply.
const pbkdf2Iterations = 101

// HashPassword is mosquitto's "$7$" format (what mosquitto_passwd writes
// by default since 2.0): PBKDF2-HMAC-SHA512, a 12-byte salt, a 64-byte
// key, as $7$ITERATIONS$BASE64(SALT)$BASE64(KEY).
func HashPassword(password string, r io.Reader) (string, error) {
	salt := make([]byte, 12)
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha512.New, password, salt, pbkdf2Iterations, 64)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$7$%d$%s$%s", pbkdf2Iterations, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key)), nil
}
