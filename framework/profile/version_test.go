package profile_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/k3snet/e2e/framework/profile"
)

func TestParseVersionRoundTrips(t *testing.T) {
	cases := []struct {
		in, str, tag  string
		maj, min, pat int
		suffix        string
	}{
		{"v1.31.1+k3s1", "v1.31.1+k3s1", "v1.31.1-k3s1", 1, 31, 1, "k3s1"},
		{"v1.31.1-k3s1", "v1.31.1+k3s1", "v1.31.1-k3s1", 1, 31, 1, "k3s1"},
		{"v1.31.1+k3s-536fa44e", "v1.31.1+k3s-536fa44e", "v1.31.1-k3s-536fa44e", 1, 31, 1, "k3s-536fa44e"},
		{"v1.31.1", "v1.31.1", "v1.31.1", 1, 31, 1, ""},
		{"v1.27.0+k3s12", "v1.27.0+k3s12", "v1.27.0-k3s12", 1, 27, 0, "k3s12"},
	}
	for _, c := range cases {
		v, err := profile.ParseVersion(c.in)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", c.in, err)
			continue
		}
		if v.Major != c.maj || v.Minor != c.min || v.Patch != c.pat || v.Suffix != c.suffix {
			t.Errorf("ParseVersion(%q) = %+v", c.in, v)
		}
		if v.String() != c.str || v.ImageTag() != c.tag {
			t.Errorf("%q: String %q ImageTag %q, want %q %q", c.in, v.String(), v.ImageTag(), c.str, c.tag)
		}
		again, err := profile.ParseVersion(v.String())
		if err != nil || again != v {
			t.Errorf("%q does not round-trip: %+v, %v", c.in, again, err)
		}
		if fromTag, err := profile.ParseVersion(v.ImageTag()); err != nil || fromTag != v {
			t.Errorf("image tag %q does not round-trip: %+v, %v", v.ImageTag(), fromTag, err)
		}
	}
}

func TestParseVersionRejects(t *testing.T) {
	for _, s := range []string{
		"", "1.31", "v1.31", "1.31.1", "v1.31.1.2", "V1.31.1", "v1.31.1+", "v1.31.1+k3s",
		"v1.31.1+k3s0", "v1.31.1+rke2r1", "v1.31.1-rc1+k3s1", "v01.31.1", "v1.31.1+k3s-XYZ",
		"v1.31.1+k3s-abc", " v1.31.1", "latest", "v1.31.x",
	} {
		_, err := profile.ParseVersion(s)
		if err == nil {
			t.Errorf("ParseVersion(%q) accepted", s)
			continue
		}
		want := `bad version "` + s + `": want vMAJOR.MINOR.PATCH[+k3sN]`
		if err.Error() != want {
			t.Errorf("ParseVersion(%q) = %q, want %q", s, err, want)
		}
	}
}

func TestVersionOrdering(t *testing.T) {
	ordered := []string{
		"v1.9.9+k3s1",
		"v1.26.0",
		"v1.26.0+k3s1",
		"v1.26.0+k3s2",
		"v1.26.0+k3s10",
		"v1.26.5+k3s1",
		"v1.27.0+k3s1",
		"v1.31.1+k3s1",
		"v1.31.1+k3s-536fa44e",
		"v2.0.0",
	}
	var vs []profile.Version
	for _, s := range ordered {
		vs = append(vs, profile.MustParseVersion(s))
	}
	for i := range vs {
		for j := range vs {
			if got := vs[i].Less(vs[j]); got != (i < j) {
				t.Errorf("%s.Less(%s) = %v", vs[i], vs[j], got)
			}
		}
	}
	shuffled := slices.Clone(vs)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, func(a, b profile.Version) int {
		if a.Less(b) {
			return -1
		}
		if b.Less(a) {
			return 1
		}
		return 0
	})
	if !slices.Equal(shuffled, vs) {
		t.Errorf("sorted = %v", shuffled)
	}
}

func TestRefusalMessages(t *testing.T) {
	cases := []struct {
		backend, version, want string
	}{
		{"ipsec", "v1.26.5+k3s1", ""},
		{"ipsec", "v1.27.3+k3s1", "The ipsec backend is deprecated and was removed in k3s v1.27; please switch to wireguard-native"},
		{"ipsec", "v1.28.1+k3s1", "Cannot configure unknown flannel backend 'ipsec'"},
		{"ipsec", "v1.31.1+k3s-536fa44e", "Cannot configure unknown flannel backend 'ipsec'"},
		{"wireguard", "v1.25.9+k3s1", ""},
		{"wireguard", "v1.26.0+k3s1", "The wireguard backend was deprecated in K3s v1.26, please switch to wireguard-native"},
		{"wireguard", "v1.27.0+k3s1", "Cannot configure unknown flannel backend 'wireguard'"},
		{"vxlan", "v1.31.1+k3s1", ""},
		{"wireguard-native", "v1.31.1+k3s1", ""},
	}
	for _, c := range cases {
		if got := profile.RefusalMessage(c.backend, profile.MustParseVersion(c.version)); got != c.want {
			t.Errorf("RefusalMessage(%s, %s) = %q, want %q", c.backend, c.version, got, c.want)
		}
	}
	// No version: the newest k3s.
	if got := profile.RefusalMessage("ipsec", profile.Version{}); got != "Cannot configure unknown flannel backend 'ipsec'" {
		t.Errorf("RefusalMessage(ipsec, newest) = %q", got)
	}
	if v, ok := profile.BackendRemovedIn("ipsec"); !ok || v.MinorString() != "v1.27" {
		t.Errorf("BackendRemovedIn(ipsec) = %v, %v", v, ok)
	}
	if v, ok := profile.BackendRemovedIn("wireguard"); !ok || v.MinorString() != "v1.26" {
		t.Errorf("BackendRemovedIn(wireguard) = %v, %v", v, ok)
	}
	if _, ok := profile.BackendRemovedIn("vxlan"); ok {
		t.Error("vxlan reported as removed")
	}
}

func TestExpectForVersion(t *testing.T) {
	p := mustParse(t, "name: ipsec\nnetwork:\n  flannelBackend: ipsec\nexpect:\n  startRefused: true\n")
	e := p.ExpectFor(profile.MustParseVersion("v1.27.2+k3s1"))
	if !e.StartRefused || !strings.HasPrefix(e.RefusalMessage, "The ipsec backend is deprecated") || e.PodNetwork || e.PodMTU(1500) != 0 {
		t.Errorf("ipsec at v1.27: %+v", e)
	}
	e = p.Expect() // no version pinned: the newest k3s
	if !e.StartRefused || e.RefusalMessage != "Cannot configure unknown flannel backend 'ipsec'" {
		t.Errorf("ipsec at newest: %+v", e)
	}
	old := mustParse(t, "name: ipsec\nnetwork:\n  flannelBackend: ipsec\n")
	if e := old.ExpectFor(profile.MustParseVersion("v1.26.5+k3s1")); e.StartRefused || !e.PodNetwork || e.PodMTU(1500) != 0 {
		t.Errorf("ipsec at v1.26.5: %+v", e)
	}
	pinned := mustParse(t, "name: wg\nk3s:\n  version: v1.26.3+k3s1\nnetwork:\n  flannelBackend: wireguard\nexpect:\n  startRefused: true\n")
	if e := pinned.Expect(); !e.StartRefused || !strings.Contains(e.RefusalMessage, "K3s v1.26") {
		t.Errorf("wireguard pinned at v1.26.3: %+v", e)
	}
}

func TestGates(t *testing.T) {
	v := profile.MustParseVersion
	ipsec := mustParse(t, "name: ipsec\nnetwork:\n  flannelBackend: ipsec\n")
	got := profile.Gates(ipsec, v("v1.26.5+k3s1"), v("v1.27.1+k3s1"))
	if len(got) != 1 || !strings.Contains(got[0], "flannel-backend ipsec, which was removed in k3s v1.27") ||
		!strings.Contains(got[0], "migrate to wireguard-native first") {
		t.Errorf("ipsec 1.26→1.27 gates = %q", got)
	}
	got = profile.Gates(ipsec, v("v1.25.9+k3s1"), v("v1.27.1+k3s1"))
	if len(got) != 2 || !strings.Contains(got[0], "skips 1 minor release") {
		t.Errorf("ipsec 1.25→1.27 gates = %q", got)
	}
	vx := mustParse(t, "name: vxlan\n")
	if got := profile.Gates(vx, v("v1.30.5+k3s1"), v("v1.31.1+k3s1")); len(got) != 0 {
		t.Errorf("vxlan 1.30→1.31 gates = %q", got)
	}
	if got := profile.Gates(vx, v("v1.31.1+k3s1"), v("v1.30.5+k3s1")); len(got) != 1 || !strings.Contains(got[0], "downgrade") {
		t.Errorf("vxlan downgrade gates = %q", got)
	}
	wg := mustParse(t, "name: wg\nnetwork:\n  flannelBackend: wireguard\nexpect:\n  startRefused: true\n")
	if got := profile.Gates(wg, v("v1.27.0+k3s1"), v("v1.28.0+k3s1")); len(got) != 1 || !strings.Contains(got[0], "already refuses") {
		t.Errorf("wireguard 1.27→1.28 gates = %q", got)
	}
}
