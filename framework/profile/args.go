package profile

import (
	"slices"
	"strconv"
)

// ServerArgs are the k3s server flags for the profile. The network settings are always
// passed, even when they equal k3s's defaults, so that a change of default in a new k3s
// release shows up as a failed check instead of silently changing what is tested.
func (p *Profile) ServerArgs() []string {
	n := p.Network
	args := []string{
		"--flannel-backend=" + n.FlannelBackend,
		"--cluster-cidr=" + n.ClusterCIDR,
		"--service-cidr=" + n.ServiceCIDR,
		"--cluster-dns=" + n.ClusterDNS,
		"--cluster-domain=" + n.ClusterDomain,
	}
	for _, c := range p.Disable {
		args = append(args, "--disable="+c)
	}
	if n.DisableNetworkPolicy {
		args = append(args, "--disable-network-policy")
	}
	// k3s has no flag of its own for the node mask; it is kube-controller-manager's. Passed
	// only when it differs, because the pass-through flag replaces nothing k3s sets itself.
	if n.NodeCIDRMaskSize != 0 && n.NodeCIDRMaskSize != DefaultNodeCIDRMaskSize {
		args = append(args, "--kube-controller-manager-arg=node-cidr-mask-size="+strconv.Itoa(n.NodeCIDRMaskSize))
	}
	return append(args, p.ExtraServerArgs...)
}

// AgentArgs are the k3s agent flags for the profile. Network settings are server flags in k3s
// (agents receive them from the server), so only the profile's extra agent args remain.
func (p *Profile) AgentArgs() []string {
	args := slices.Clone(p.ExtraAgentArgs)
	if args == nil {
		args = []string{}
	}
	return args
}
