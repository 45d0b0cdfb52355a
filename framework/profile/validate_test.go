package profile_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/k3snet/e2e/framework/profile"
)

// badInputs are profiles the suite must refuse, each with the parts of the message a user needs
// to fix it. A case with a version parses fine and is refused by ValidateFor(version).
var badInputs = []struct {
	name    string
	yaml    string
	version string
	want    []string
}{
	// Decoding.
	{"unknown top-level field", "name: x\nbackend: vxlan\n", "", []string{"bad.yaml: backend is not a known field", "the top level has: name, description"}},
	{"unknown nested field", "name: x\nnetwork:\n  flanelBackend: vxlan\n", "", []string{"network.flanelBackend is not a known field", "network has: flannelBackend"}},
	{"field in the wrong case", "Name: x\n", "", []string{"Name is not a known field"}},
	{"duplicate key", "name: x\nname: y\n", "", []string{"bad.yaml: not valid YAML", "already set"}},
	{"wrong type", "name: x\nservers: two\n", "", []string{"bad.yaml: servers: got a string, want an integer"}},
	{"not a mapping", "- name: x\n", "", []string{"a profile is a YAML mapping", "not a list"}},
	// Name.
	{"missing name", "servers: 1\n", "", []string{"bad.yaml: name is missing"}},
	{"bad name", "name: Bad_Name\n", "", []string{`name "Bad_Name" is not allowed`, "lower-case letters, digits and '-'"}},
	{"name ending in dash", "name: vxlan-\n", "", []string{`name "vxlan-" is not allowed`}},
	{"too long name", "name: a-very-long-profile\n", "", []string{"is 19 characters long; at most 16", "32-character limit"}},
	// Nodes.
	{"no servers", "name: x\nservers: 0\n", "", []string{"servers is 0; a cluster needs at least 1 server"}},
	{"negative agents", "name: x\nagents: -1\n", "", []string{"agents is -1"}},
	{"too few nodes for crossNode", "name: x\nagents: 0\n", "", []string{"crossNode is true but the profile has 1 node", "at least 2"}},
	// Backend.
	{"unknown backend", "name: x\nnetwork:\n  flannelBackend: geneve\n", "", []string{`network.flannelBackend "geneve" is not a flannel backend k3s knows`, "vxlan, host-gw, wireguard-native, none, ipsec (removed in k3s v1.27), wireguard (removed in k3s v1.26)"}},
	// CIDRs.
	{"malformed cluster CIDR", "name: x\nnetwork:\n  clusterCIDR: 10.42.0/16\n", "", []string{`network.clusterCIDR "10.42.0/16" is not a CIDR`}},
	{"host bits set", "name: x\nnetwork:\n  clusterCIDR: 10.42.0.1/16\n", "", []string{"network.clusterCIDR 10.42.0.1/16 has host bits set; did you mean 10.42.0.0/16?"}},
	{"IPv6 CIDR", "name: x\nnetwork:\n  serviceCIDR: fd00:43::/112\n", "", []string{"network.serviceCIDR fd00:43::/112 is IPv6", "not supported by this suite yet"}},
	{"dual-stack list", "name: x\nnetwork:\n  clusterCIDR: 10.42.0.0/16,fd00:42::/56\n", "", []string{"dual-stack is not supported by this suite yet"}},
	{"overlapping CIDRs", "name: x\nnetwork:\n  clusterCIDR: 10.42.0.0/15\n", "", []string{"network.serviceCIDR 10.43.0.0/16 overlaps network.clusterCIDR 10.42.0.0/15"}},
	{"service CIDR too large", "name: x\nnetwork:\n  serviceCIDR: 10.0.0.0/8\n", "", []string{"network.serviceCIDR 10.0.0.0/8 is too large", "/12"}},
	{"docker subnet overlaps pods", "name: x\nnetwork:\n  dockerSubnet: 10.42.128.0/24\n", "", []string{"network.dockerSubnet 10.42.128.0/24 overlaps network.clusterCIDR 10.42.0.0/16"}},
	{"docker subnet too small", "name: x\nnetwork:\n  dockerSubnet: 172.30.0.0/30\n", "", []string{"network.dockerSubnet 172.30.0.0/30 has room for 2 hosts", "need 4"}},
	// Cluster DNS.
	{"DNS not an IP", "name: x\nnetwork:\n  clusterDNS: kube-dns\n", "", []string{`network.clusterDNS "kube-dns" is not an IP address`}},
	{"DNS outside service CIDR", "name: x\nnetwork:\n  clusterDNS: 10.44.0.10\n", "", []string{"bad.yaml: network.clusterDNS 10.44.0.10 is outside network.serviceCIDR 10.43.0.0/16"}},
	{"default DNS outside custom CIDR", "name: x\nnetwork:\n  serviceCIDR: 10.53.0.0/29\n", "", []string{"network.clusterDNS has no default", "10.53.0.0/29"}},
	{"DNS is the network address", "name: x\nnetwork:\n  clusterDNS: 10.43.0.0\n", "", []string{"network.clusterDNS 10.43.0.0 is the network address"}},
	{"DNS is .1", "name: x\nnetwork:\n  clusterDNS: 10.43.0.1\n", "", []string{"network.clusterDNS 10.43.0.1 is taken: the kubernetes Service always gets the first address"}},
	{"DNS is broadcast", "name: x\nnetwork:\n  clusterDNS: 10.43.255.255\n", "", []string{"network.clusterDNS 10.43.255.255 is the broadcast address"}},
	{"DNS is IPv6", "name: x\nnetwork:\n  clusterDNS: fd00:43::a\n", "", []string{"network.clusterDNS fd00:43::a is not IPv4"}},
	// Node mask.
	{"mask not longer than cluster prefix", "name: x\nnetwork:\n  nodeCIDRMaskSize: 16\n", "", []string{"network.nodeCIDRMaskSize is 16; it must be longer than the network.clusterCIDR prefix /16 and at most 28"}},
	{"mask too long", "name: x\nnetwork:\n  nodeCIDRMaskSize: 30\n", "", []string{"network.nodeCIDRMaskSize is 30"}},
	{"cluster CIDR too small for the nodes", "name: x\nagents: 4\nnetwork:\n  clusterCIDR: 10.42.0.0/23\n", "", []string{"network.nodeCIDRMaskSize 24 gives only 2 node subnet(s) in network.clusterCIDR 10.42.0.0/23, but the profile has 5 nodes"}},
	// Cluster domain.
	{"domain with underscore", "name: x\nnetwork:\n  clusterDomain: k3s_net.test\n", "", []string{`network.clusterDomain "k3s_net.test" is not a valid DNS name`, `label "k3s_net"`}},
	{"domain with trailing dot", "name: x\nnetwork:\n  clusterDomain: cluster.local.\n", "", []string{"remove the trailing dot"}},
	{"domain with empty label", "name: x\nnetwork:\n  clusterDomain: a..b\n", "", []string{"empty label"}},
	{"upper-case domain", "name: x\nnetwork:\n  clusterDomain: Cluster.Local\n", "", []string{`label "Cluster"`}},
	// Disable.
	{"unknown disable", "name: x\ndisable: [kube-proxy]\n", "", []string{`disable[0] "kube-proxy" is not a component k3s can disable`, "coredns, servicelb, traefik, local-storage, metrics-server, runtimes"}},
	{"duplicate disable", "name: x\ndisable: [traefik, servicelb, traefik]\n", "", []string{`disable[2] "traefik" is listed twice`}},
	// Extra args.
	{"serverArgs sets the backend", "name: x\nserverArgs: [\"--flannel-backend=host-gw\"]\n", "", []string{`serverArgs[0] "--flannel-backend=host-gw" sets --flannel-backend, which the profile owns: use network.flannelBackend instead`}},
	{"serverArgs sets disable", "name: x\nserverArgs: [\"--disable=traefik\"]\n", "", []string{"use disable instead"}},
	{"serverArgs sets network policy", "name: x\nserverArgs: [\"--disable-network-policy\"]\n", "", []string{"use network.disableNetworkPolicy instead"}},
	{"serverArgs sets node mask", "name: x\nserverArgs: [\"--kube-controller-manager-arg=node-cidr-mask-size=26\"]\n", "", []string{"sets node-cidr-mask-size, which the profile owns: use network.nodeCIDRMaskSize instead"}},
	{"serverArgs sets token", "name: x\nserverArgs: [\"--token=secret\"]\n", "", []string{"sets --token, which the suite sets for every cluster"}},
	{"agentArgs sets cluster DNS", "name: x\nagentArgs: [\"--cluster-dns=10.43.0.53\"]\n", "", []string{`agentArgs[0] "--cluster-dns=10.43.0.53" sets --cluster-dns`, "use network.clusterDNS instead"}},
	{"arg without dashes", "name: x\nserverArgs: [\"tls-san=foo\"]\n", "", []string{`serverArgs[0] "tls-san=foo" is not a flag`, `"--name=value"`}},
	{"arg split in two", "name: x\nserverArgs: [\"--node-label\", \"a=b\"]\n", "", []string{`serverArgs[1] "a=b" is not a flag`}},
	// Add-ons.
	{"metallb without servicelb disabled", "name: x\ndisable: [traefik]\naddons:\n  metallb: true\n", "", []string{"addons.metallb is true but servicelb is still enabled: MetalLB needs `disable: [servicelb]`"}},
	// Versions.
	{"malformed k3s.version", "name: x\nk3s:\n  version: \"1.31\"\n", "", []string{`k3s.version is malformed: bad version "1.31": want vMAJOR.MINOR.PATCH[+k3sN]`}},
	{"k3s.version with a bad suffix", "name: x\nk3s:\n  version: v1.31.1+rke2r1\n", "", []string{`bad version "v1.31.1+rke2r1"`}},
	{"startRefused with a supported backend", "name: x\nexpect:\n  startRefused: true\n", "", []string{"expect.startRefused is true but k3s accepts flannel-backend vxlan in every version", "ipsec, wireguard"}},
	{"pinned version refuses ipsec", "name: x\nk3s:\n  version: v1.31.1+k3s1\nnetwork:\n  flannelBackend: ipsec\n", "", []string{"network.flannelBackend ipsec was removed in k3s v1.27; v1.31.1+k3s1 refuses to start with it (set expect.startRefused: true"}},
	{"ipsec at v1.27.0", "name: x\nnetwork:\n  flannelBackend: ipsec\n", "v1.27.0+k3s1", []string{"bad.yaml: network.flannelBackend ipsec was removed in k3s v1.27; v1.27.0+k3s1 refuses to start with it (set expect.startRefused: true to assert the refusal"}},
	{"ipsec at v1.31.1", "name: x\nnetwork:\n  flannelBackend: ipsec\n", "v1.31.1+k3s1", []string{"ipsec was removed in k3s v1.27; v1.31.1+k3s1 refuses to start with it"}},
	{"wireguard at v1.26.0", "name: x\nnetwork:\n  flannelBackend: wireguard\n", "v1.26.0+k3s1", []string{"wireguard was removed in k3s v1.26; v1.26.0+k3s1 refuses", "or use wireguard-native"}},
	{"ipsec refusal expected at v1.26.5", "name: x\nnetwork:\n  flannelBackend: ipsec\nexpect:\n  startRefused: true\n", "v1.26.5+k3s1", []string{"expect.startRefused is true but k3s v1.26.5+k3s1 still has flannel-backend ipsec (removed in v1.27)"}},
	{"wireguard refusal expected at v1.25.9", "name: x\nnetwork:\n  flannelBackend: wireguard\nexpect:\n  startRefused: true\n", "v1.25.9+k3s1", []string{"k3s v1.25.9+k3s1 still has flannel-backend wireguard"}},
}

func TestBadInputs(t *testing.T) {
	if len(badInputs) < 25 {
		t.Fatalf("only %d bad inputs", len(badInputs))
	}
	for _, c := range badInputs {
		t.Run(c.name, func(t *testing.T) {
			p, err := profile.Parse([]byte(c.yaml), "bad.yaml")
			if c.version != "" {
				if err != nil {
					t.Fatalf("Parse refused a profile only version %s should refuse: %v", c.version, err)
				}
				err = p.ValidateFor(profile.MustParseVersion(c.version))
			}
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			// Every line of a joined error names the file.
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "bad.yaml: ") && !strings.HasPrefix(line, "  ") {
					t.Errorf("error line does not name the file: %q", line)
				}
			}
		})
	}
}

func TestAcceptedEdgeCases(t *testing.T) {
	good := []struct{ name, yaml, version string }{
		{"ipsec on a version that has it", "name: x\nnetwork:\n  flannelBackend: ipsec\n", "v1.26.5+k3s1"},
		{"wireguard before its removal", "name: x\nnetwork:\n  flannelBackend: wireguard\n", "v1.25.9+k3s1"},
		{"refused ipsec", "name: x\nnetwork:\n  flannelBackend: ipsec\nexpect:\n  startRefused: true\n", "v1.27.0+k3s1"},
		{"refused wireguard", "name: x\nnetwork:\n  flannelBackend: wireguard\nexpect:\n  startRefused: true\n", "v1.26.0+k3s1"},
		{"tls-san is allowed", "name: x\nserverArgs: [\"--tls-san=k3snet.local\", \"--kube-apiserver-arg=audit-log-maxage=1\"]\n", ""},
		{"single node without crossNode", "name: x\nagents: 0\ncrossNode: false\n", ""},
		{"pinned lab version", "name: x\nk3s:\n  version: v1.31.1+k3s-536fa44e\n  image: k3snet.local/k3s:v1.31.1-k3snet\n", ""},
		{"small cluster CIDR that fits", "name: x\nagents: 1\nnetwork:\n  clusterCIDR: 10.42.0.0/23\n", ""},
		{"DNS at the last usable address", "name: x\nnetwork:\n  clusterDNS: 10.43.255.254\n", ""},
		{"explicit defaults", "name: x\nservers: 1\nagents: 2\nnetwork:\n  flannelBackend: vxlan\n  clusterCIDR: 10.42.0.0/16\n  serviceCIDR: 10.43.0.0/16\n  clusterDNS: 10.43.0.10\n  clusterDomain: cluster.local\n  nodeCIDRMaskSize: 24\n", ""},
		{"empty lists and mappings", "name: x\ndisable: []\nserverArgs: []\nagentArgs: []\naddons: {}\nexpect: {}\nk3s: {}\n", ""},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			p, err := profile.Parse([]byte(c.yaml), "good.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.version != "" {
				if err := p.ValidateFor(profile.MustParseVersion(c.version)); err != nil {
					t.Fatalf("ValidateFor(%s): %v", c.version, err)
				}
			}
		})
	}
}

func TestProblemsAreReportedTogether(t *testing.T) {
	_, err := profile.Parse([]byte("name: x\nservers: 0\nnetwork:\n  flannelBackend: geneve\n  clusterDomain: a..b\ndisable: [foo]\n"), "many.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	var fe *profile.FieldError
	if !errors.As(err, &fe) || fe.Source != "many.yaml" {
		t.Errorf("no FieldError in %v", err)
	}
	for _, w := range []string{"servers is 0", `"geneve"`, "empty label", `"foo"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("joined error lacks %q:\n%v", w, err)
		}
	}
	if n := strings.Count(err.Error(), "many.yaml: "); n != 4 {
		t.Errorf("want 4 problems, got %d:\n%v", n, err)
	}
}

func TestValidateWithoutSource(t *testing.T) {
	p := &profile.Profile{Name: "built", Network: profile.Network{FlannelBackend: "geneve"}}
	err := p.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), `profile "built": `) {
		t.Errorf("Validate = %v", err)
	}
}

func TestProfileBuiltInCode(t *testing.T) {
	p := &profile.Profile{Name: "coded", Network: profile.Network{FlannelBackend: profile.BackendHostGW}}
	p.SetDefaults()
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if p.Servers != 1 || p.AgentCount() != 2 || p.Network.ClusterDNS != "10.43.0.10" {
		t.Errorf("defaults not set: %+v", p)
	}
	if got := p.Expect().RoutesVia; got != profile.RoutesViaNode {
		t.Errorf("RoutesVia = %q", got)
	}
}
