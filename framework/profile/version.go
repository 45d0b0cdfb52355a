package profile

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a k3s version: Kubernetes major.minor.patch plus k3s's own suffix.
type Version struct {
	Major, Minor, Patch int
	// Suffix is the k3s part without its separator: "k3s1" for a release, "k3s-536fa44e" for a
	// build from a commit (what the offline lab builds), "" when only the Kubernetes version
	// was given.
	Suffix string
}

// versionRE accepts v1.31.1+k3s1 (release), v1.31.1-k3s1 (the same as an image tag, which
// cannot hold '+'), v1.31.1+k3s-536fa44e (a build from a commit) and v1.31.1.
var versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})(?:[+-](k3s[1-9][0-9]{0,3}|k3s-[0-9a-f]{7,40}))?$`)

// ParseVersion parses a k3s version in any of the forms k3s and its images use.
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("bad version %q: want vMAJOR.MINOR.PATCH[+k3sN]", s)
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	return Version{Major: atoi(m[1]), Minor: atoi(m[2]), Patch: atoi(m[3]), Suffix: m[4]}, nil
}

// MustParseVersion is ParseVersion for constants; it panics on a bad version.
func MustParseVersion(s string) Version {
	v, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String is the canonical form, with '+' before the suffix (what `k3s --version` prints).
func (v Version) String() string {
	s := fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Suffix != "" {
		s += "+" + v.Suffix
	}
	return s
}

// ImageTag is the form used in image tags, which cannot contain '+'.
func (v Version) ImageTag() string { return strings.Replace(v.String(), "+", "-", 1) }

// MinorString is "vMAJOR.MINOR", how k3s release notes name a release line.
func (v Version) MinorString() string { return fmt.Sprintf("v%d.%d", v.Major, v.Minor) }

// IsZero reports whether v is the zero Version (no version known).
func (v Version) IsZero() bool { return v == Version{} }

// Less orders versions by major, minor, patch, then suffix: no suffix first, numbered k3s
// releases by number, then builds from a commit (which have no order among themselves and are
// compared as text only to keep sorting stable).
func (v Version) Less(o Version) bool { return v.compare(o) < 0 }

func (v Version) compare(o Version) int {
	if c := cmp.Compare(v.Major, o.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, o.Minor); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Patch, o.Patch); c != 0 {
		return c
	}
	rank := func(s string) (int, int) {
		if s == "" {
			return 0, 0
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(s, "k3s")); err == nil {
			return 1, n
		}
		return 2, 0
	}
	vr, vn := rank(v.Suffix)
	or, on := rank(o.Suffix)
	if c := cmp.Compare(vr, or); c != 0 {
		return c
	}
	if c := cmp.Compare(vn, on); c != 0 {
		return c
	}
	return strings.Compare(v.Suffix, o.Suffix)
}

// atLeast reports whether v's release line is major.minor or later.
func (v Version) atLeast(o Version) bool {
	return v.Major > o.Major || (v.Major == o.Major && v.Minor >= o.Minor)
}

// UnknownBackendMessage is the error k3s's agent returns for a backend it has no code for
// (pkg/agent/flannel/setup.go, createFlannelConf), formatted with the backend name. k3s logs
// it at level=fatal and exits 1. It is what every k3s since the final removal of ipsec
// (v1.28) prints for ipsec and the legacy wireguard backend; verified in the k3s module this
// suite builds (Kubernetes v1.31.1).
const UnknownBackendMessage = "Cannot configure unknown flannel backend '%s'"

// removal records when k3s dropped a flannel backend and what it printed while the removal was
// new (before the code was deleted and the generic UnknownBackendMessage took over).
type removal struct {
	removedIn Version // first release line that refuses the backend
	// transitional is the start of k3s's own fatal message during the removedIn line; these
	// lines are no longer in the k3s source, the text is from k3s's release validation logs.
	transitional string
	replacement  string
}

var removals = map[string]removal{
	// k3s v1.26 turned the legacy backend into a fatal error and v1.27 deleted it.
	BackendWireGuard: {
		removedIn:    Version{Major: 1, Minor: 26},
		transitional: "The wireguard backend was deprecated in K3s v1.26, please switch to wireguard-native",
		replacement:  BackendWireGuardNative,
	},
	// k3s v1.27 refused ipsec with a dedicated fatal message and v1.28 deleted it.
	BackendIPSec: {
		removedIn:    Version{Major: 1, Minor: 27},
		transitional: "The ipsec backend is deprecated and was removed in k3s v1.27; please switch to wireguard-native",
		replacement:  BackendWireGuardNative,
	},
}

// BackendRemovedIn returns the first k3s release line without backend, if k3s removed it.
func BackendRemovedIn(backend string) (Version, bool) {
	r, ok := removals[backend]
	return r.removedIn, ok
}

// Supports reports whether k3s v still starts with flannel backend b. The zero Version stands
// for the newest k3s.
func Supports(b string, v Version) bool {
	r, ok := removals[b]
	if !ok {
		return true
	}
	return !v.IsZero() && !v.atLeast(r.removedIn)
}

// RefusalMessage is a substring of the fatal log line k3s v prints when it refuses backend b,
// or "" when v accepts b. The zero Version stands for the newest k3s.
func RefusalMessage(b string, v Version) string {
	r, ok := removals[b]
	if !ok || Supports(b, v) {
		return ""
	}
	if !v.IsZero() && v.Major == r.removedIn.Major && v.Minor == r.removedIn.Minor {
		return r.transitional
	}
	return fmt.Sprintf(UnknownBackendMessage, b)
}

// ValidateFor applies the version gates: a removed backend must be expected to be refused,
// and a refusal can only be expected from a version that refuses.
func (p *Profile) ValidateFor(v Version) error {
	b := p.Network.FlannelBackend
	r, removable := removals[b]
	if !removable {
		return nil
	}
	if !Supports(b, v) && !p.Outcome.StartRefused {
		return p.fieldErr("network.flannelBackend", "%s was removed in k3s %s; %s refuses to start with it (set expect.startRefused: true to assert the refusal, or use %s)", b, r.removedIn.MinorString(), versionName(v), r.replacement)
	}
	if Supports(b, v) && p.Outcome.StartRefused {
		extra := ""
		if b == BackendIPSec {
			extra = "; note that k3s images stopped shipping strongSwan (swanctl, charon) in the 2022-12 releases, so a stock image fails there for a different reason, not the refusal this profile asserts"
		}
		return p.fieldErr("expect.startRefused", "is true but k3s %s still has flannel-backend %s (removed in %s); run the profile with k3s %s or later%s", v, b, r.removedIn.MinorString(), r.removedIn.MinorString(), extra)
	}
	return nil
}

func versionName(v Version) string {
	if v.IsZero() {
		return "the newest k3s"
	}
	return v.String()
}

// Gates returns human-readable warnings for upgrading a cluster of profile p from k3s from to
// k3s to: anything the profile relies on that the upgrade removes, and upgrade paths k3s does
// not support. An empty result means nothing is known to break.
func Gates(p *Profile, from, to Version) []string {
	var out []string
	switch {
	case to.Less(from):
		out = append(out, fmt.Sprintf("%s → %s is a downgrade, which k3s does not support", from, to))
	case to.Major == from.Major && to.Minor > from.Minor+1:
		out = append(out, fmt.Sprintf("%s → %s skips %d minor release(s); Kubernetes, and so k3s, supports upgrading one minor release at a time", from, to, to.Minor-from.Minor-1))
	}
	b := p.Network.FlannelBackend
	if r, ok := removals[b]; ok {
		switch {
		case Supports(b, from) && !Supports(b, to):
			out = append(out, fmt.Sprintf("profile %s uses flannel-backend %s, which was removed in k3s %s: after the upgrade to %s nodes refuse to start (%q); migrate to %s first", p.Name, b, r.removedIn.MinorString(), to, RefusalMessage(b, to), r.replacement))
		case !Supports(b, from):
			out = append(out, fmt.Sprintf("profile %s uses flannel-backend %s, which k3s %s already refuses (removed in %s)", p.Name, b, from, r.removedIn.MinorString()))
		}
	}
	return out
}
