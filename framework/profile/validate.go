package profile

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// FieldError is one problem with one profile field.
type FieldError struct {
	Source  string // file (or other origin) of the profile
	Field   string // dotted YAML path, e.g. network.clusterDNS
	Problem string // what is wrong and what is allowed
}

func (e *FieldError) Error() string { return e.Source + ": " + e.Field + " " + e.Problem }

func (p *Profile) where() string {
	if p.Source != "" {
		return p.Source
	}
	if p.Name != "" {
		return fmt.Sprintf("profile %q", p.Name)
	}
	return "profile"
}

func (p *Profile) fieldErr(field, format string, args ...any) error {
	return &FieldError{Source: p.where(), Field: field, Problem: fmt.Sprintf(format, args...)}
}

// maxNameLen keeps the cluster name k3snet-<name>-<RUN_ID> within k3d's 32-character limit
// (DefaultClusterNameMaxLength): 7 + 16 + 1 + at most 6 for the run id (framework/config)
// leaves 2 characters spare, and "wireguard-native" still fits.
const maxNameLen = 16

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// dnsLabelRE is one RFC 1123 label as Kubernetes accepts it in a cluster domain.
var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// minServicePrefix: kube-apiserver refuses an IPv4 service range with more than 20 host bits.
const minServicePrefix = 12

// maxNodeMaskSize keeps at least 16 addresses per node subnet, enough for the probe pods and
// the packaged components a node may run.
const maxNodeMaskSize = 28

// Validate checks everything that does not depend on the k3s version; when k3s.version is
// set it also applies ValidateFor with that version. All problems are reported together.
func (p *Profile) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	switch {
	case p.Name == "":
		add(p.fieldErr("name", "is missing: every profile needs a name of 1-%d characters [a-z0-9-]", maxNameLen))
	case len(p.Name) > maxNameLen:
		add(p.fieldErr("name", "%q is %d characters long; at most %d are allowed so that the cluster name k3snet-<name>-<run id> fits k3d's 32-character limit", p.Name, len(p.Name), maxNameLen))
	case !nameRE.MatchString(p.Name):
		add(p.fieldErr("name", "%q is not allowed: use lower-case letters, digits and '-', starting and ending with a letter or digit", p.Name))
	}

	servers, agents := p.ServerCount(), p.AgentCount()
	if servers < 1 {
		add(p.fieldErr("servers", "is %d; a cluster needs at least 1 server", servers))
	}
	if agents < 0 {
		add(p.fieldErr("agents", "is %d; use 0 or more", agents))
	}
	if p.NeedsCrossNode() && servers >= 1 && agents >= 0 && servers+agents < 2 {
		add(p.fieldErr("crossNode", "is true but the profile has %d node (servers + agents); cross-node checks need at least 2: add an agent or set crossNode: false", servers+agents))
	}

	if p.K3s.Version != "" {
		if _, err := ParseVersion(p.K3s.Version); err != nil {
			add(p.fieldErr("k3s.version", "is malformed: %v", err))
		}
	}
	if strings.ContainsAny(p.K3s.Image, " \t\n") {
		add(p.fieldErr("k3s.image", "%q contains white space; want an image reference like rancher/k3s:v1.31.1-k3s1", p.K3s.Image))
	}

	p.validateNetwork(add)
	p.validateDisable(add)
	add(p.validateArgs("serverArgs", p.ExtraServerArgs))
	add(p.validateArgs("agentArgs", p.ExtraAgentArgs))

	if p.Addons.MetalLB && !p.Disabled(ComponentServiceLB) {
		add(p.fieldErr("addons.metallb", "is true but servicelb is still enabled: MetalLB needs `disable: [servicelb]`, otherwise k3s's servicelb and MetalLB both answer for LoadBalancer Services"))
	}

	if p.Outcome.StartRefused {
		if _, removable := removals[p.Network.FlannelBackend]; !removable && slices.Contains(Backends, p.Network.FlannelBackend) {
			add(p.fieldErr("expect.startRefused", "is true but k3s accepts flannel-backend %s in every version; only a removed backend (%s) can be expected to be refused", p.Network.FlannelBackend, strings.Join(removedBackends(), ", ")))
		}
	}

	if len(errs) == 0 && p.K3s.Version != "" {
		v, _ := ParseVersion(p.K3s.Version)
		add(p.ValidateFor(v))
	}
	return errors.Join(errs...)
}

func (p *Profile) validateNetwork(add func(error)) {
	n := p.Network

	if !slices.Contains(Backends, n.FlannelBackend) {
		add(p.fieldErr("network.flannelBackend", "%q is not a flannel backend k3s knows; known: %s", n.FlannelBackend, describeBackends()))
	}

	cluster, cerr := p.checkPrefix("network.clusterCIDR", n.ClusterCIDR)
	add(cerr)
	service, serr := p.checkPrefix("network.serviceCIDR", n.ServiceCIDR)
	add(serr)
	if serr == nil && service.Bits() < minServicePrefix {
		add(p.fieldErr("network.serviceCIDR", "%s is too large: kube-apiserver accepts at most 20 host bits, so the prefix must be /%d or longer", service, minServicePrefix))
	}
	var docker netip.Prefix
	var derr error
	if n.DockerSubnet != "" {
		docker, derr = p.checkPrefix("network.dockerSubnet", n.DockerSubnet)
		add(derr)
		// Docker takes the network address, the gateway and the broadcast address; every node
		// needs one more.
		if derr == nil && hostCount(docker) < p.Nodes()+1 {
			add(p.fieldErr("network.dockerSubnet", "%s has room for %d hosts; the gateway and %d nodes need %d", docker, hostCount(docker), p.Nodes(), p.Nodes()+1))
		}
	}

	if cerr == nil && serr == nil && cluster.Overlaps(service) {
		add(p.fieldErr("network.serviceCIDR", "%s overlaps network.clusterCIDR %s; pod and service ranges must be disjoint", service, cluster))
	}
	if n.DockerSubnet != "" && derr == nil {
		if cerr == nil && docker.Overlaps(cluster) {
			add(p.fieldErr("network.dockerSubnet", "%s overlaps network.clusterCIDR %s; node and pod addresses must be disjoint", docker, cluster))
		}
		if serr == nil && docker.Overlaps(service) {
			add(p.fieldErr("network.dockerSubnet", "%s overlaps network.serviceCIDR %s; node and service addresses must be disjoint", docker, service))
		}
	}

	p.validateClusterDNS(service, serr == nil, add)

	if cerr == nil {
		mask := n.NodeCIDRMaskSize
		switch {
		case mask <= cluster.Bits() || mask > maxNodeMaskSize:
			add(p.fieldErr("network.nodeCIDRMaskSize", "is %d; it must be longer than the network.clusterCIDR prefix /%d and at most %d", mask, cluster.Bits(), maxNodeMaskSize))
		default:
			// kube-controller-manager hands each node one /mask out of the cluster CIDR; a
			// node without one never gets a pod network.
			subnets := 1 << min(mask-cluster.Bits(), 30)
			if subnets < p.Nodes() {
				add(p.fieldErr("network.nodeCIDRMaskSize", "%d gives only %d node subnet(s) in network.clusterCIDR %s, but the profile has %d nodes; use a larger clusterCIDR or a longer mask", mask, subnets, cluster, p.Nodes()))
			}
		}
	}

	if err := checkDomain(n.ClusterDomain); err != "" {
		add(p.fieldErr("network.clusterDomain", "%q is not a valid DNS name: %s", n.ClusterDomain, err))
	}
}

func (p *Profile) validateClusterDNS(service netip.Prefix, serviceOK bool, add func(error)) {
	raw := p.Network.ClusterDNS
	origin := ""
	if p.dnsDefaulted {
		origin = " (the default: network.serviceCIDR's network address + 10, as k3s computes it)"
	}
	if raw == "" {
		// Only reachable when the service CIDR is invalid or too small for a default.
		if serviceOK {
			add(p.fieldErr("network.clusterDNS", "has no default: network.serviceCIDR %s is too small to hold its network address + 10; set clusterDNS explicitly", service))
		}
		return
	}
	ip, err := netip.ParseAddr(raw)
	if err != nil {
		add(p.fieldErr("network.clusterDNS", "%q is not an IP address; want an IPv4 address inside network.serviceCIDR, like 10.43.0.10", raw))
		return
	}
	if !ip.Is4() {
		add(p.fieldErr("network.clusterDNS", "%s is not IPv4: IPv6 and dual-stack are not supported by this suite yet", ip))
		return
	}
	if !serviceOK {
		return
	}
	first, _ := indexedAddr(service, 1)
	last := lastAddr(service)
	switch {
	case !service.Contains(ip):
		add(p.fieldErr("network.clusterDNS", "%s%s is outside network.serviceCIDR %s", ip, origin, service))
	case ip == service.Addr():
		add(p.fieldErr("network.clusterDNS", "%s is the network address of network.serviceCIDR %s; pick an address inside it, like its network address + 10", ip, service))
	case ip == first:
		add(p.fieldErr("network.clusterDNS", "%s is taken: the kubernetes Service always gets the first address of network.serviceCIDR %s; pick another, like its network address + 10", ip, service))
	case ip == last:
		add(p.fieldErr("network.clusterDNS", "%s is the broadcast address of network.serviceCIDR %s; pick an address inside it", ip, service))
	}
}

func (p *Profile) validateDisable(add func(error)) {
	seen := map[string]bool{}
	for i, c := range p.Disable {
		field := fmt.Sprintf("disable[%d]", i)
		if !slices.Contains(Components, c) {
			add(p.fieldErr(field, "%q is not a component k3s can disable; known: %s", c, strings.Join(Components, ", ")))
			continue
		}
		if seen[c] {
			add(p.fieldErr(field, "%q is listed twice; list each component once", c))
		}
		seen[c] = true
	}
}

// ownedFlags are k3s flags a structured profile field sets; passing them again in extra args
// would make the cluster differ from what the suite expects.
var ownedFlags = map[string]string{
	"flannel-backend":        "network.flannelBackend",
	"cluster-cidr":           "network.clusterCIDR",
	"service-cidr":           "network.serviceCIDR",
	"cluster-dns":            "network.clusterDNS",
	"cluster-domain":         "network.clusterDomain",
	"disable":                "disable",
	"disable-network-policy": "network.disableNetworkPolicy",
	// Not a field, but a custom flannel config overrides the backend the expectations are
	// derived from.
	"flannel-conf": "network.flannelBackend (a custom flannel config would make the expectations wrong)",
}

// clusterFlags are set by the cluster package (through k3d) for every node.
var clusterFlags = []string{"token", "server", "cluster-init"}

// ownedComponentArgs are settings inside component pass-through flags that a profile field owns.
var ownedComponentArgs = map[string]map[string]string{
	"kube-controller-manager-arg": {
		"node-cidr-mask-size":      "network.nodeCIDRMaskSize",
		"node-cidr-mask-size-ipv4": "network.nodeCIDRMaskSize",
		"cluster-cidr":             "network.clusterCIDR",
	},
	"kube-apiserver-arg": {
		"service-cluster-ip-range": "network.serviceCIDR",
	},
	"kubelet-arg": {
		"cluster-dns":    "network.clusterDNS",
		"cluster-domain": "network.clusterDomain",
	},
}

func (p *Profile) validateArgs(field string, args []string) error {
	var errs []error
	for i, a := range args {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !strings.HasPrefix(a, "--") || len(a) == 2 {
			errs = append(errs, p.fieldErr(f, "%q is not a flag: write each k3s flag as one \"--name=value\" entry", a))
			continue
		}
		name, value, _ := strings.Cut(a[2:], "=")
		if strings.ContainsAny(name, " \t") {
			errs = append(errs, p.fieldErr(f, "%q has white space in the flag name: write each k3s flag as one \"--name=value\" entry", a))
			continue
		}
		if owner, ok := ownedFlags[name]; ok {
			errs = append(errs, p.fieldErr(f, "%q sets --%s, which the profile owns: use %s instead", a, name, owner))
			continue
		}
		if slices.Contains(clusterFlags, name) {
			errs = append(errs, p.fieldErr(f, "%q sets --%s, which the suite sets for every cluster it creates; remove it", a, name))
			continue
		}
		if sub, ok := ownedComponentArgs[name]; ok {
			key, _, _ := strings.Cut(strings.TrimLeft(value, "-"), "=")
			if owner, ok := sub[key]; ok {
				errs = append(errs, p.fieldErr(f, "%q sets %s, which the profile owns: use %s instead", a, key, owner))
			}
		}
	}
	return errors.Join(errs...)
}

// checkPrefix parses an IPv4 CIDR written in canonical form.
func (p *Profile) checkPrefix(field, s string) (netip.Prefix, error) {
	if strings.Contains(s, ",") {
		return netip.Prefix{}, p.fieldErr(field, "%q is a list: dual-stack is not supported by this suite yet; want one IPv4 network like 10.42.0.0/16", s)
	}
	pr, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, p.fieldErr(field, "%q is not a CIDR; want an IPv4 network like 10.42.0.0/16", s)
	}
	if !pr.Addr().Is4() {
		return netip.Prefix{}, p.fieldErr(field, "%s is IPv6: IPv6 and dual-stack are not supported by this suite yet; want an IPv4 network like 10.42.0.0/16", s)
	}
	if pr.Masked() != pr {
		return netip.Prefix{}, p.fieldErr(field, "%s has host bits set; did you mean %s?", s, pr.Masked())
	}
	return pr, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	pr, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !pr.Addr().Is4() || pr.Masked() != pr {
		return netip.Prefix{}, fmt.Errorf("%s is not a canonical IPv4 CIDR", s)
	}
	return pr, nil
}

// indexedAddr is the address i positions after the network address, if it lies inside pr.
func indexedAddr(pr netip.Prefix, i uint32) (netip.Addr, bool) {
	if !pr.Addr().Is4() {
		return netip.Addr{}, false
	}
	b := pr.Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n += i
	a := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	return a, pr.Contains(a)
}

func lastAddr(pr netip.Prefix) netip.Addr {
	b := pr.Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= uint32(1)<<(32-pr.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// hostCount is the usable host addresses of an IPv4 prefix (network and broadcast excluded).
func hostCount(pr netip.Prefix) int {
	bits := 32 - pr.Bits()
	if bits < 2 {
		return 0
	}
	return (1 << min(bits, 30)) - 2
}

// checkDomain applies the rules kubelet applies to --cluster-domain (an RFC 1123 subdomain)
// and returns what is wrong, or "".
func checkDomain(d string) string {
	switch {
	case d == "":
		return "it is empty"
	case strings.HasSuffix(d, "."):
		return "remove the trailing dot"
	case len(d) > 253:
		return fmt.Sprintf("it is %d characters long; at most 253 are allowed", len(d))
	}
	for _, l := range strings.Split(d, ".") {
		if !dnsLabelRE.MatchString(l) {
			if l == "" {
				return "it has an empty label (two dots in a row or a leading dot)"
			}
			return fmt.Sprintf("label %q must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit", l)
		}
	}
	return ""
}

// Disabled reports whether the profile disables component c.
func (p *Profile) Disabled(c string) bool { return slices.Contains(p.Disable, c) }

func describeBackends() string {
	var out []string
	for _, b := range Backends {
		if r, ok := removals[b]; ok {
			out = append(out, fmt.Sprintf("%s (removed in k3s %s)", b, r.removedIn.MinorString()))
			continue
		}
		out = append(out, b)
	}
	return strings.Join(out, ", ")
}

func removedBackends() []string {
	var out []string
	for _, b := range Backends {
		if _, ok := removals[b]; ok {
			out = append(out, b)
		}
	}
	return out
}
