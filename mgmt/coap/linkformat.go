package coap

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// Link is one entry of an RFC 6690 link-format document. Attrs holds each
// parameter by name; a parameter without value (like obs) maps to "".
type Link struct {
	Target string
	Attrs  map[string]string
}

// linkSpec describes a resource in /.well-known/core.
type linkSpec struct {
	path  string
	rt    string
	obs   bool
	title string
}

// Device-wide resources; each container adds the containerLinks family.
var deviceLinks = []linkSpec{
	{"/d", "tc.device", false, "the device: uptime, engines, containers by state, messaging"},
	{"/c", "tc.containers", false, "containers"},
	{"/stats", "tc.stats", false, "statistics of every container"},
	{"/t", "tc.tenants", false, "tenants and their ceilings"},
	{"/audit", "tc.audit", false, "refused calls and requests"},
	{"/deploy", "tc.deploy", false, "POST a signed image"},
	{"/exec", "tc.exec", false, "POST a signed command"},
}

var containerLinks = []linkSpec{
	{"", "tc.container", false, "status"},
	{"/meta", "tc.meta", false, "manifest"},
	{"/logs", "tc.logs", true, "log lines, observable"},
	{"/stats", "tc.stats", false, "statistics"},
}

// coreLinks lists every resource, with the container family for each name.
func coreLinks(names []string) []Link {
	links := make([]Link, 0, len(deviceLinks)+len(names)*len(containerLinks))
	add := func(s linkSpec, path string) {
		attrs := map[string]string{"rt": s.rt, "ct": strconv.Itoa(int(jsonFormat)), "title": s.title}
		if s.obs {
			attrs["obs"] = ""
		}
		links = append(links, Link{Target: path, Attrs: attrs})
	}
	for _, s := range deviceLinks {
		add(s, s.path)
	}
	for _, n := range names {
		for _, s := range containerLinks {
			add(s, "/c/"+n+s.path)
		}
	}
	return links
}

// filterLinks applies an RFC 6690 section 4.1 query filter: the attribute
// (or "href" for the target) equals val, or starts with it when val ends
// in '*'. Space-separated attribute values match on any of their words.
func filterLinks(links []Link, key, val string) []Link {
	if key == "" {
		return links
	}
	prefix := strings.HasSuffix(val, "*")
	val = strings.TrimSuffix(val, "*")
	match := func(v string) bool {
		if prefix {
			return strings.HasPrefix(v, val)
		}
		return v == val
	}
	var out []Link
	for _, l := range links {
		v, ok := l.Attrs[key]
		if key == "href" {
			v, ok = l.Target, true
		}
		if !ok {
			continue
		}
		hit := match(v)
		for _, w := range strings.Fields(v) {
			hit = hit || match(w)
		}
		if hit {
			out = append(out, l)
		}
	}
	return out
}

// formatLinks encodes links in link format, attributes in a stable order.
func formatLinks(links []Link) []byte {
	var b strings.Builder
	for i, l := range links {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("<" + l.Target + ">")
		keys := make([]string, 0, len(l.Attrs))
		for k := range l.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := l.Attrs[k]
			b.WriteString(";" + k)
			switch {
			case v == "" && k == "obs":
			case (k == "ct" || k == "sz") && isDigits(v):
				b.WriteString("=" + v)
			default:
				b.WriteString("=" + quote(v))
			}
		}
	}
	return []byte(b.String())
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Bounds of what parseLinks accepts, so a hostile peer cannot make the
// client build huge structures.
const (
	maxLinkDoc   = 256 << 10
	maxLinks     = 4096
	maxLinkAttrs = 32
)

// parseLinks decodes an RFC 6690 link-format document.
func parseLinks(doc []byte) ([]Link, error) {
	if len(doc) > maxLinkDoc {
		return nil, fmt.Errorf("%w: link format: document larger than %d bytes", mgmt.ErrInvalid, maxLinkDoc)
	}
	p := linkParser{s: string(doc)}
	var links []Link
	p.skipSpace()
	if p.done() {
		return nil, nil
	}
	for {
		if len(links) == maxLinks {
			return nil, p.errorf("more than %d links", maxLinks)
		}
		l, err := p.link()
		if err != nil {
			return nil, err
		}
		links = append(links, l)
		p.skipSpace()
		if p.done() {
			return links, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.errorf("want ',' between links")
		}
		p.i++
		p.skipSpace()
	}
}

type linkParser struct {
	s string
	i int
}

func (p *linkParser) done() bool { return p.i >= len(p.s) }

func (p *linkParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: link format at byte %d: %s", mgmt.ErrInvalid, p.i, fmt.Sprintf(format, args...))
}

func (p *linkParser) skipSpace() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\r' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *linkParser) link() (Link, error) {
	if p.done() || p.s[p.i] != '<' {
		return Link{}, p.errorf("want '<'")
	}
	end := strings.IndexByte(p.s[p.i+1:], '>')
	if end < 0 {
		return Link{}, p.errorf("unterminated '<'")
	}
	target := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsAny(target, "<\" \t\r\n,;") {
		return Link{}, p.errorf("bad character in target %q", target)
	}
	p.i += end + 2
	l := Link{Target: target, Attrs: map[string]string{}}
	for {
		p.skipSpace()
		if p.done() || p.s[p.i] != ';' {
			return l, nil
		}
		p.i++
		p.skipSpace()
		name := p.token()
		if name == "" {
			return Link{}, p.errorf("want a parameter name")
		}
		if len(l.Attrs) == maxLinkAttrs {
			return Link{}, p.errorf("more than %d parameters", maxLinkAttrs)
		}
		val := ""
		if !p.done() && p.s[p.i] == '=' {
			p.i++
			var err error
			if val, err = p.value(); err != nil {
				return Link{}, err
			}
		}
		// RFC 8288: a repeated parameter is ignored after its first use.
		if _, dup := l.Attrs[name]; !dup {
			l.Attrs[name] = val
		}
	}
}

// token reads a parameter name or unquoted value (RFC 8288 token and
// RFC 6690 ptoken characters).
func (p *linkParser) token() string {
	start := p.i
	for !p.done() {
		c := p.s[p.i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\",;<>=\\", c) >= 0 {
			break
		}
		p.i++
	}
	return p.s[start:p.i]
}

func (p *linkParser) value() (string, error) {
	if p.done() || p.s[p.i] != '"' {
		v := p.token()
		if v == "" {
			return "", p.errorf("want a parameter value")
		}
		return v, nil
	}
	p.i++
	var b strings.Builder
	for {
		if p.done() {
			return "", p.errorf("unterminated quoted string")
		}
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.done() {
				return "", p.errorf("unterminated escape")
			}
			c = p.s[p.i]
			p.i++
		}
		b.WriteByte(c)
	}
}
