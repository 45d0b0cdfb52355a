package profile_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/k3snet/e2e/fixtures/profiles"
	"github.com/k3snet/e2e/framework/profile"
)

// labVersion is what the offline lab's k3s reports (scripts/lab/versions.env).
var labVersion = profile.MustParseVersion("v1.31.1+k3s-536fa44e")

var shipped = []string{"custom-cidr", "host-gw", "ipsec", "metallb", "none", "stripped", "vxlan", "wireguard-native"}

func mustParse(t *testing.T, y string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse([]byte(y), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func names(ps []*profile.Profile) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestShippedProfilesParseAndValidate(t *testing.T) {
	all, err := profile.LoadFS(profiles.FS)
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	if got := names(all); !slices.Equal(got, shipped) {
		t.Fatalf("embedded profiles = %v, want %v", got, shipped)
	}
	fromDir, err := profile.LoadDir(filepath.Join("..", "..", profiles.Dir))
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	if got := names(fromDir); !slices.Equal(got, shipped) {
		t.Fatalf("profiles on disk = %v, want %v", got, shipped)
	}
	for _, p := range all {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", p.Name, err)
		}
		if err := p.ValidateFor(labVersion); err != nil {
			t.Errorf("%s: ValidateFor(%s): %v", p.Name, labVersion, err)
		}
		if p.Source != p.Name+".yaml" {
			t.Errorf("%s: Source = %q", p.Name, p.Source)
		}
	}
}

func TestShippedProfileExpectations(t *testing.T) {
	all, err := profile.LoadFS(profiles.FS)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]profile.Expectations{}
	for _, p := range all {
		by[p.Name] = p.ExpectFor(labVersion)
	}
	if e := by["ipsec"]; !e.StartRefused || e.RefusalMessage != "Cannot configure unknown flannel backend 'ipsec'" || e.PodNetwork {
		t.Errorf("ipsec: %+v", e)
	}
	if e := by["none"]; e.PodNetwork || !e.CrossNode || e.FlannelInterface != "" || e.RoutesVia != "" || e.StartRefused {
		t.Errorf("none: %+v", e)
	}
	if e := by["metallb"]; !e.MetalLB || e.ServiceLB || e.Traefik || !e.CoreDNS {
		t.Errorf("metallb: %+v", e)
	}
	e := by["stripped"]
	if e.CoreDNS || e.ServiceLB || e.Traefik || e.MetricsServer || e.LocalStorage || e.NetworkPolicyEnforced {
		t.Errorf("stripped: %+v", e)
	}
	if e := by["custom-cidr"]; e.KubeDNSIP != netip.MustParseAddr("10.53.0.53") || e.ClusterDomain != "k3snet.test" ||
		e.ClusterCIDR != netip.MustParsePrefix("10.52.0.0/16") || e.ServiceCIDR != netip.MustParsePrefix("10.53.0.0/16") ||
		e.APIServerServiceIP != netip.MustParseAddr("10.53.0.1") {
		t.Errorf("custom-cidr: %+v", e)
	}
}

func TestDefaultsAreK3sDefaults(t *testing.T) {
	p := mustParse(t, "name: plain\n")
	n := p.Network
	checks := []struct{ field, got, want string }{
		{"flannelBackend", n.FlannelBackend, "vxlan"},
		{"clusterCIDR", n.ClusterCIDR, "10.42.0.0/16"},
		{"serviceCIDR", n.ServiceCIDR, "10.43.0.0/16"},
		{"clusterDNS", n.ClusterDNS, "10.43.0.10"},
		{"clusterDomain", n.ClusterDomain, "cluster.local"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("default %s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if n.NodeCIDRMaskSize != 24 || p.ServerCount() != 1 || p.AgentCount() != 2 || p.Nodes() != 3 || !p.NeedsCrossNode() {
		t.Errorf("defaults: mask %d, servers %d, agents %d, crossNode %v", n.NodeCIDRMaskSize, p.ServerCount(), p.AgentCount(), p.NeedsCrossNode())
	}
	if n.DisableNetworkPolicy || len(p.Disable) != 0 || p.Addons.MetalLB || p.Outcome.StartRefused {
		t.Errorf("defaults enable or disable something: %+v", p)
	}
	if profile.DefaultClusterDNS != n.ClusterDNS {
		t.Errorf("DefaultClusterDNS %s disagrees with the derived %s", profile.DefaultClusterDNS, n.ClusterDNS)
	}
}

func TestClusterDNSDefaultFollowsServiceCIDR(t *testing.T) {
	// k3s derives the DNS address as the service CIDR's network address + 10.
	for cidr, want := range map[string]string{
		"10.53.0.0/16":   "10.53.0.10",
		"192.168.0.0/24": "192.168.0.10",
		"10.96.0.0/12":   "10.96.0.10",
	} {
		p := mustParse(t, "name: d\nnetwork:\n  serviceCIDR: "+cidr+"\n")
		if p.Network.ClusterDNS != want {
			t.Errorf("serviceCIDR %s: clusterDNS %s, want %s", cidr, p.Network.ClusterDNS, want)
		}
	}
	p := mustParse(t, "name: d\nagents: 0\ncrossNode: false\n")
	if p.AgentCount() != 0 || p.Nodes() != 1 {
		t.Errorf("agents: 0 not kept: %d", p.AgentCount())
	}
}

func TestServerArgs(t *testing.T) {
	vx := mustParse(t, "name: vxlan\n")
	want := []string{
		"--flannel-backend=vxlan",
		"--cluster-cidr=10.42.0.0/16",
		"--service-cidr=10.43.0.0/16",
		"--cluster-dns=10.43.0.10",
		"--cluster-domain=cluster.local",
	}
	if got := vx.ServerArgs(); !slices.Equal(got, want) {
		t.Errorf("vxlan ServerArgs\n got %q\nwant %q", got, want)
	}
	if got := vx.AgentArgs(); got == nil || len(got) != 0 {
		t.Errorf("vxlan AgentArgs = %#v, want empty", got)
	}

	cc := mustParse(t, `name: custom-cidr
network:
  clusterCIDR: 10.52.0.0/16
  serviceCIDR: 10.53.0.0/16
  clusterDNS: 10.53.0.53
  clusterDomain: k3snet.test
`)
	want = []string{
		"--flannel-backend=vxlan",
		"--cluster-cidr=10.52.0.0/16",
		"--service-cidr=10.53.0.0/16",
		"--cluster-dns=10.53.0.53",
		"--cluster-domain=k3snet.test",
	}
	if got := cc.ServerArgs(); !slices.Equal(got, want) {
		t.Errorf("custom-cidr ServerArgs\n got %q\nwant %q", got, want)
	}

	full := mustParse(t, `name: full
network:
  flannelBackend: host-gw
  nodeCIDRMaskSize: 26
  disableNetworkPolicy: true
disable: [traefik, servicelb]
serverArgs: ["--kube-proxy-arg=proxy-mode=iptables", "--tls-san=k3snet.local"]
agentArgs: ["--node-label=k3snet=yes"]
`)
	want = []string{
		"--flannel-backend=host-gw",
		"--cluster-cidr=10.42.0.0/16",
		"--service-cidr=10.43.0.0/16",
		"--cluster-dns=10.43.0.10",
		"--cluster-domain=cluster.local",
		"--disable=traefik",
		"--disable=servicelb",
		"--disable-network-policy",
		"--kube-controller-manager-arg=node-cidr-mask-size=26",
		"--kube-proxy-arg=proxy-mode=iptables",
		"--tls-san=k3snet.local",
	}
	if got := full.ServerArgs(); !slices.Equal(got, want) {
		t.Errorf("full ServerArgs\n got %q\nwant %q", got, want)
	}
	if got := full.AgentArgs(); !slices.Equal(got, []string{"--node-label=k3snet=yes"}) {
		t.Errorf("full AgentArgs = %q", got)
	}
	// The returned slices are copies: appending must not change the profile.
	_ = append(full.AgentArgs(), "--x=y")
	if len(full.ExtraAgentArgs) != 1 {
		t.Error("AgentArgs shares its backing array with the profile")
	}
}

func TestExpectationsPerBackend(t *testing.T) {
	cases := []struct {
		backend   string
		iface     string
		overhead  int
		mtu1500   int
		routes    string
		vni, port int
		wgPort    int
		podNet    bool
	}{
		{"vxlan", "flannel.1", 50, 1450, profile.RoutesViaFlannel, 1, 8472, 0, true},
		{"host-gw", "", 0, 1500, profile.RoutesViaNode, 0, 0, 0, true},
		{"wireguard-native", "flannel-wg", 80, 1420, profile.RoutesViaDevice, 0, 0, 51820, true},
		{"none", "", 0, 0, "", 0, 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.backend, func(t *testing.T) {
			p := mustParse(t, "name: b\nnetwork:\n  flannelBackend: "+c.backend+"\n")
			e := p.Expect()
			if e.Backend != c.backend || e.FlannelInterface != c.iface || e.EncapOverhead != c.overhead ||
				e.RoutesVia != c.routes || e.VXLANID != c.vni || e.VXLANPort != c.port || e.WireGuardPort != c.wgPort ||
				e.PodNetwork != c.podNet {
				t.Errorf("expectations %+v", e)
			}
			if got := e.PodMTU(1500); got != c.mtu1500 {
				t.Errorf("PodMTU(1500) = %d, want %d", got, c.mtu1500)
			}
			if e.NeedsWireGuard != (c.backend == "wireguard-native") {
				t.Errorf("NeedsWireGuard = %v", e.NeedsWireGuard)
			}
			if e.StartRefused || e.RefusalMessage != "" {
				t.Errorf("unexpected refusal: %+v", e)
			}
			if e.NDots != 5 || e.NodeCIDRMaskSize != 24 || e.Nodes != 3 || !e.CrossNode {
				t.Errorf("common fields: %+v", e)
			}
			if want := []string{"profile:b", "backend:" + c.backend}; !slices.Equal(e.Labels(), want) || !slices.Equal(p.Labels(), want) {
				t.Errorf("Labels = %v / %v, want %v", e.Labels(), p.Labels(), want)
			}
			if e.KubeDNSIP != netip.MustParseAddr("10.43.0.10") || e.APIServerServiceIP != netip.MustParseAddr("10.43.0.1") {
				t.Errorf("service addresses: %+v", e)
			}
		})
	}
	if got := mustParse(t, "name: j\n").Expect().PodMTU(9000); got != 8950 {
		t.Errorf("vxlan PodMTU(9000) = %d, want 8950", got)
	}
}

func TestSearchDomains(t *testing.T) {
	e := mustParse(t, "name: s\n").Expect()
	want := []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"}
	if got := e.SearchDomains("default"); !slices.Equal(got, want) {
		t.Errorf("SearchDomains = %q, want %q", got, want)
	}
	e = mustParse(t, "name: s\nnetwork:\n  clusterDomain: k3snet.test\n").Expect()
	want = []string{"probe.svc.k3snet.test", "svc.k3snet.test", "k3snet.test"}
	if got := e.SearchDomains("probe"); !slices.Equal(got, want) {
		t.Errorf("SearchDomains = %q, want %q", got, want)
	}
}

func TestSelect(t *testing.T) {
	all, err := profile.LoadFS(profiles.FS)
	if err != nil {
		t.Fatal(err)
	}
	got, err := profile.Select(all, "")
	if err != nil || !slices.Equal(names(got), shipped) {
		t.Errorf("Select all = %v, %v", names(got), err)
	}
	got, err = profile.Select(all, " host-gw, vxlan  host-gw,")
	if err != nil || !slices.Equal(names(got), []string{"host-gw", "vxlan"}) {
		t.Errorf("Select = %v, %v", names(got), err)
	}
	_, err = profile.Select(all, "vxlan,flannel,geneve")
	if err == nil {
		t.Fatal("Select accepted unknown names")
	}
	for _, want := range []string{`"flannel"`, `"geneve"`, "known profiles: custom-cidr, host-gw, ipsec, metallb, none, stripped, vxlan, wireguard-native"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Select error %q lacks %q", err, want)
		}
	}
}

func TestLoadDirRejectsDuplicatesAndMisnamedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "name: a\n")
	write("a.yml", "name: a\n")
	write("notes.txt", "not a profile")
	_, err := profile.LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), `name "a" is already used by`) {
		t.Errorf("duplicate names: %v", err)
	}

	dir = t.TempDir()
	write("b.yaml", "name: c\n")
	_, err = profile.LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "differs from the file name") || !strings.Contains(err.Error(), filepath.Join(dir, "b.yaml")) {
		t.Errorf("misnamed file: %v", err)
	}

	if _, err := profile.LoadDir(t.TempDir()); err == nil {
		t.Error("empty directory accepted")
	}
	if _, err := profile.Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestString(t *testing.T) {
	s := mustParse(t, "name: m\ndisable: [servicelb]\naddons:\n  metallb: true\n").String()
	if s != "m (vxlan, 1 server(s), 2 agent(s), disable servicelb, metallb)" {
		t.Errorf("String = %q", s)
	}
}
