package profile

import "net/netip"

// How pod traffic to another node is routed, per backend (Expectations.RoutesVia).
const (
	// RoutesViaFlannel: one route per peer node, "<peer podCIDR> via <peer podCIDR base> dev
	// flannel.1 onlink" — the gateway is the peer's flannel.1 address, resolved by flannel's
	// static ARP/FDB entries.
	RoutesViaFlannel = "flannel"
	// RoutesViaNode: one route per peer node, "<peer podCIDR> via <peer node IP> dev <uplink>";
	// needs the nodes on one L2 segment.
	RoutesViaNode = "node"
	// RoutesViaDevice: a single scope-link route for the whole cluster CIDR on flannel-wg, no
	// gateway; WireGuard picks the peer by its allowed IPs (flannel v0.25.6
	// pkg/backend/wireguard, wgDevice.addRoute with netconf.Network).
	RoutesViaDevice = "device"
)

// Expectations is what k3s must build for a profile, derived from it and nothing else. Every
// zero value means "not expected": a spec asserting absence reads the same field as one
// asserting presence.
type Expectations struct {
	// Profile is the profile's name.
	Profile string
	// Backend is the flannel backend asked for.
	Backend string
	// PodNetwork: pods get addresses and connectivity. False for "none" (k3s runs no CNI, so
	// nodes stay NotReady with "cni plugin not initialized") and for a refused start.
	PodNetwork bool
	// StartRefused: k3s must refuse to start (a removed backend); asserted, never retried.
	StartRefused bool
	// RefusalMessage is a substring of k3s's fatal log line when StartRefused (see
	// RefusalMessage); empty otherwise.
	RefusalMessage string
	// FlannelInterface is the device flannel creates on every node: flannel.<VNI> for vxlan,
	// flannel-wg for wireguard-native; host-gw and none create none.
	FlannelInterface string
	// VXLANID is the VNI of flannel.1: flannel's default (1), which k3s's Linux backend config
	// does not change. 0 when the backend is not vxlan.
	VXLANID int
	// VXLANPort is the UDP port of the VXLAN device: k3s sets no port, flannel passes 0 and the
	// Linux kernel then uses its historical default 8472 (not IANA's 4789). 0 when not vxlan.
	VXLANPort int
	// WireGuardPort is flannel's default WireGuard listen port for IPv4 (51820). 0 when the
	// backend is not wireguard-native.
	WireGuardPort int
	// EncapOverhead is what flannel subtracts from the uplink MTU: 50 for vxlan (the inner
	// Ethernet header 14 + outer IPv4 20 + UDP 8 + VXLAN 8), 80 for wireguard-native (flannel's own
	// constant, room for an IPv6 outer header), 0 for host-gw, which routes unencapsulated.
	EncapOverhead int
	// RoutesVia is how a node reaches another node's pods: RoutesViaFlannel, RoutesViaNode,
	// RoutesViaDevice or "" when there is no pod network.
	RoutesVia string
	// NodeCIDRMaskSize is the prefix length of each node's podCIDR.
	NodeCIDRMaskSize int
	// ClusterCIDR holds every pod address; each node's podCIDR is a /NodeCIDRMaskSize in it.
	ClusterCIDR netip.Prefix
	// ServiceCIDR holds every ClusterIP.
	ServiceCIDR netip.Prefix
	// APIServerServiceIP is the ClusterIP of the default/kubernetes Service: always the first
	// address of ServiceCIDR.
	APIServerServiceIP netip.Addr
	// KubeDNSIP is the ClusterIP of kube-system/kube-dns and the nameserver kubelet writes
	// into every ClusterFirst pod's resolv.conf (also when CoreDNS is disabled: kubelet is
	// configured regardless).
	KubeDNSIP netip.Addr
	// ClusterDomain is the DNS suffix of Services and the last search domain of pods.
	ClusterDomain string
	// NDots is the ndots option kubelet writes for ClusterFirst pods (Kubernetes' fixed 5).
	NDots int
	// CoreDNS, ServiceLB, Traefik, MetricsServer, LocalStorage: the packaged component is
	// deployed, i.e. not listed in `disable`.
	CoreDNS, ServiceLB, Traefik, MetricsServer, LocalStorage bool
	// NetworkPolicyEnforced: k3s's embedded policy controller (kube-router) runs, which it
	// does on every backend unless disabled; with "none" it runs but there is no traffic to
	// filter.
	NetworkPolicyEnforced bool
	// MetalLB: the suite installs MetalLB, and LoadBalancer IPs come from its pool rather
	// than from node IPs (servicelb is then disabled).
	MetalLB bool
	// Servers, Agents, Nodes count the cluster's nodes.
	Servers, Agents, Nodes int
	// CrossNode: specs that need pods on two different nodes apply.
	CrossNode bool
	// NeedsWireGuard: the node kernel must provide WireGuard (wireguard-native); without it
	// k3s exits with "could not create wireguard interface" and restarts in a loop.
	NeedsWireGuard bool
}

// Expect derives the expectations for the profile. Refusal messages are those of the k3s
// version pinned in k3s.version, or of the newest k3s when none is pinned; use ExpectFor when
// the version is chosen at run time.
func (p *Profile) Expect() Expectations {
	v, _ := ParseVersion(p.K3s.Version)
	return p.ExpectFor(v)
}

// ExpectFor derives the expectations for the profile on k3s v (zero: the newest k3s).
func (p *Profile) ExpectFor(v Version) Expectations {
	n := p.Network
	e := Expectations{
		Profile:               p.Name,
		Backend:               n.FlannelBackend,
		NodeCIDRMaskSize:      n.NodeCIDRMaskSize,
		ClusterDomain:         n.ClusterDomain,
		NDots:                 5,
		CoreDNS:               !p.Disabled(ComponentCoreDNS),
		ServiceLB:             !p.Disabled(ComponentServiceLB),
		Traefik:               !p.Disabled(ComponentTraefik),
		MetricsServer:         !p.Disabled(ComponentMetricsServer),
		LocalStorage:          !p.Disabled(ComponentLocalStorage),
		NetworkPolicyEnforced: !n.DisableNetworkPolicy,
		MetalLB:               p.Addons.MetalLB,
		Servers:               p.ServerCount(),
		Agents:                p.AgentCount(),
		Nodes:                 p.Nodes(),
		CrossNode:             p.NeedsCrossNode(),
	}
	if pr, err := parsePrefix(n.ClusterCIDR); err == nil {
		e.ClusterCIDR = pr
	}
	if pr, err := parsePrefix(n.ServiceCIDR); err == nil {
		e.ServiceCIDR = pr
		e.APIServerServiceIP, _ = indexedAddr(pr, 1)
	}
	if ip, err := netip.ParseAddr(n.ClusterDNS); err == nil {
		e.KubeDNSIP = ip
	}

	if !Supports(n.FlannelBackend, v) {
		e.StartRefused = true
		e.RefusalMessage = RefusalMessage(n.FlannelBackend, v)
		return e
	}
	switch n.FlannelBackend {
	case BackendVXLAN:
		e.PodNetwork = true
		e.FlannelInterface = "flannel.1"
		e.VXLANID = 1
		e.VXLANPort = 8472
		e.EncapOverhead = 50
		e.RoutesVia = RoutesViaFlannel
	case BackendHostGW:
		e.PodNetwork = true
		e.RoutesVia = RoutesViaNode
	case BackendWireGuardNative:
		e.PodNetwork = true
		e.FlannelInterface = "flannel-wg"
		e.WireGuardPort = 51820
		e.EncapOverhead = 80
		e.RoutesVia = RoutesViaDevice
		e.NeedsWireGuard = true
	case BackendIPSec, BackendWireGuard:
		// Still supported by v, but the suite has no expectations for these encrypted
		// legacy dataplanes beyond "pods get a network".
		e.PodNetwork = true
	}
	return e
}

// PodMTU is the MTU flannel gives pod interfaces (and cni0) on a node whose uplink has
// uplinkMTU: the uplink minus EncapOverhead. 0 when there is no pod network, or for the legacy
// ipsec and wireguard backends, whose overhead the suite does not model.
func (e Expectations) PodMTU(uplinkMTU int) int {
	if !e.PodNetwork || e.Backend == BackendIPSec || e.Backend == BackendWireGuard {
		return 0
	}
	return uplinkMTU - e.EncapOverhead
}

// SearchDomains are the first search domains of a ClusterFirst pod in namespace, in order;
// kubelet appends the node's own search domains after them.
func (e Expectations) SearchDomains(namespace string) []string {
	d := e.ClusterDomain
	return []string{namespace + ".svc." + d, "svc." + d, d}
}

// Labels are the Ginkgo labels of specs run against the profile.
func (e Expectations) Labels() []string {
	return []string{"profile:" + e.Profile, "backend:" + e.Backend}
}
