package doc

import (
	"fmt"
	"strings"
)

// Root is the prefix of every fleet topic (version 1 of the tree).
const Root = "tc/v1"

// Topics of SPEC section 8. The arguments must be valid (ValidID,
// ValidTenant, ValidDigest); they are not checked here.
func StatusTopic(device string) string        { return Root + "/dev/" + device + "/status" }
func ReportedTopic(device string) string      { return Root + "/dev/" + device + "/reported" }
func GrantTopic(device, tenant string) string { return Root + "/dev/" + device + "/grant/" + tenant }
func DesiredTopic(device, tenant string) string {
	return Root + "/dev/" + device + "/desired/" + tenant
}
func ImageTopic(tenant, digest string) string { return Root + "/img/" + tenant + "/" + digest }
func RolloutTopic(tenant, id string) string   { return Root + "/rollout/" + tenant + "/" + id }

// Filters for subscribers.
func GrantFilter(device string) string   { return Root + "/dev/" + device + "/grant/+" }
func DesiredFilter(device string) string { return Root + "/dev/" + device + "/desired/+" }

// Fleet-wide filters (for controllers reading every device; see
// docs/fleet.md for why they do not scale past a few thousand devices).
const (
	AllStatusFilter   = Root + "/dev/+/status"
	AllReportedFilter = Root + "/dev/+/reported"
)

// RolloutFilter matches every rollout of a tenant.
func RolloutFilter(tenant string) string { return Root + "/rollout/" + tenant + "/+" }

// TopicKind says which branch of the tree a topic is in.
type TopicKind int

// Topic kinds.
const (
	TopicStatus TopicKind = iota + 1
	TopicReported
	TopicGrant
	TopicDesired
	TopicImage
	TopicRollout
)

func (k TopicKind) String() string {
	switch k {
	case TopicStatus:
		return "status"
	case TopicReported:
		return "reported"
	case TopicGrant:
		return "grant"
	case TopicDesired:
		return "desired"
	case TopicImage:
		return "img"
	case TopicRollout:
		return "rollout"
	}
	return fmt.Sprintf("TopicKind(%d)", int(k))
}

// Topic is a parsed fleet topic; the fields its kind does not use are "".
type Topic struct {
	Kind    TopicKind
	Device  string
	Tenant  string
	Digest  string
	Rollout string
}

// ParseTopic parses and validates a fleet topic.
func ParseTopic(s string) (Topic, error) {
	rest, ok := strings.CutPrefix(s, Root+"/")
	if !ok {
		return Topic{}, malformed("topic %q is not under %s/", s, Root)
	}
	p := strings.Split(rest, "/")
	bad := func() (Topic, error) { return Topic{}, malformed("topic %q is not a fleet topic", s) }
	switch {
	case p[0] == "dev" && len(p) == 3 && (p[2] == "status" || p[2] == "reported"):
		if err := ValidID(p[1]); err != nil {
			return Topic{}, err
		}
		k := TopicStatus
		if p[2] == "reported" {
			k = TopicReported
		}
		return Topic{Kind: k, Device: p[1]}, nil
	case p[0] == "dev" && len(p) == 4 && (p[2] == "grant" || p[2] == "desired"):
		if err := ValidID(p[1]); err != nil {
			return Topic{}, err
		}
		if err := ValidTenant(p[3]); err != nil {
			return Topic{}, err
		}
		k := TopicGrant
		if p[2] == "desired" {
			k = TopicDesired
		}
		return Topic{Kind: k, Device: p[1], Tenant: p[3]}, nil
	case p[0] == "img" && len(p) == 3:
		if err := ValidTenant(p[1]); err != nil {
			return Topic{}, err
		}
		if err := ValidDigest(p[2]); err != nil {
			return Topic{}, err
		}
		return Topic{Kind: TopicImage, Tenant: p[1], Digest: p[2]}, nil
	case p[0] == "rollout" && len(p) == 3:
		if err := ValidTenant(p[1]); err != nil {
			return Topic{}, err
		}
		if err := ValidID(p[2]); err != nil {
			return Topic{}, err
		}
		return Topic{Kind: TopicRollout, Tenant: p[1], Rollout: p[2]}, nil
	}
	return bad()
}
