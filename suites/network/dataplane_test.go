package network

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/probe"
	"github.com/k3snet/e2e/framework/profile"
)

// nodeView is one node as the data-plane checks see it: its Kubernetes object and what the
// host probe read from its network namespace.
type nodeView struct {
	Node    corev1.Node
	IP      string
	PodCIDR netip.Prefix
	Links   api.LinksResult
}

func (v nodeView) link(name string) *api.Link {
	for i := range v.Links.Links {
		if v.Links.Links[i].Name == name {
			return &v.Links.Links[i]
		}
	}
	return nil
}

func (v nodeView) uplinkMTU() int {
	if l := v.link(v.Links.DefaultDev); l != nil {
		return l.MTU
	}
	return 0
}

// gatewayAddr is the first address of a node's podCIDR: cni0's address and, with vxlan,
// the network address is flannel.1's.
func gatewayAddr(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

func (e *clusterEnv) nodeViews(ctx context.Context) []nodeView {
	GinkgoHelper()
	nodes, err := e.Kube.Nodes(ctx)
	Expect(err).NotTo(HaveOccurred())
	var out []nodeView
	for _, n := range nodes {
		v := nodeView{Node: n, IP: nodeIP(&n), Links: e.Probe.Links(ctx, probe.OnHost, n.Name)}
		Expect(v.Links).To(probe.Succeed(), "reading links and routes of node %s", n.Name)
		if n.Spec.PodCIDR != "" {
			v.PodCIDR = netip.MustParsePrefix(n.Spec.PodCIDR)
		}
		out = append(out, v)
	}
	return out
}

func hasRoute(routes []api.Route, dst, gw, dev string, onlink bool) bool {
	for _, r := range routes {
		if r.Dst == dst && r.Gw == gw && r.Dev == dev && r.OnLink == onlink {
			return true
		}
	}
	return false
}

func dataplaneSpecs(e *clusterEnv) {
	Context("data plane", Label("area:dataplane"), func() {
		It("annotates every node with flannel's backend type and public IP", func(ctx SpecContext) {
			if !e.Exp.PodNetwork {
				Skip("flannel does not run with flannel-backend=none")
			}
			for _, v := range e.nodeViews(ctx) {
				Expect(v.Node.Annotations).To(HaveKeyWithValue("flannel.alpha.coreos.com/backend-type", flannelBackendType(e.Exp.Backend)),
					"node %s backend-type annotation", v.Node.Name)
				Expect(v.Node.Annotations).To(HaveKeyWithValue("flannel.alpha.coreos.com/public-ip", v.IP),
					"node %s public-ip annotation", v.Node.Name)
			}
		})

		It("builds the flannel interface and cni0 bridge the backend requires", func(ctx SpecContext) {
			for _, v := range e.nodeViews(ctx) {
				mtu := e.Exp.PodMTU(v.uplinkMTU())
				switch e.Exp.Backend {
				case profile.BackendVXLAN:
					fl := v.link(e.Exp.FlannelInterface)
					Expect(fl).NotTo(BeNil(), "node %s should have %s", v.Node.Name, e.Exp.FlannelInterface)
					Expect(fl.Type).To(Equal("vxlan"), "%s on %s", fl.Name, v.Node.Name)
					Expect(fl.VXLAN).NotTo(BeNil(), "%s on %s should carry VXLAN attributes", fl.Name, v.Node.Name)
					Expect(fl.VXLAN.ID).To(Equal(e.Exp.VXLANID), "VXLAN id of %s on %s", fl.Name, v.Node.Name)
					Expect(fl.VXLAN.Port).To(Equal(e.Exp.VXLANPort), "VXLAN port of %s on %s", fl.Name, v.Node.Name)
					Expect(fl.VXLAN.Local).To(Equal(v.IP), "VXLAN local address of %s on %s should be the node IP", fl.Name, v.Node.Name)
					Expect(fl.MTU).To(Equal(mtu), "MTU of %s on %s: uplink %d − %d", fl.Name, v.Node.Name, v.uplinkMTU(), e.Exp.EncapOverhead)
					Expect(fl.Addrs).To(ContainElement(v.PodCIDR.Masked().Addr().String()+"/32"), "%s on %s should hold its podCIDR's network address", fl.Name, v.Node.Name)
				case profile.BackendHostGW:
					Expect(v.link("flannel.1")).To(BeNil(), "host-gw builds no flannel.1 (node %s)", v.Node.Name)
				case profile.BackendNone:
					Expect(v.link("flannel.1")).To(BeNil(), "flannel-backend=none builds no flannel.1 (node %s)", v.Node.Name)
					Expect(v.link("cni0")).To(BeNil(), "flannel-backend=none builds no cni0 (node %s)", v.Node.Name)
					continue
				}
				br := v.link("cni0")
				Expect(br).NotTo(BeNil(), "node %s should have the cni0 bridge", v.Node.Name)
				Expect(br.Type).To(Equal("bridge"))
				want := netip.PrefixFrom(gatewayAddr(v.PodCIDR), v.PodCIDR.Bits()).String()
				Expect(br.Addrs).To(ContainElement(want), "cni0 on %s should hold the first address of podCIDR %s", v.Node.Name, v.PodCIDR)
				Expect(br.MTU).To(Equal(mtu), "cni0 MTU on %s", v.Node.Name)
			}
		})

		It("routes every other node's podCIDR the way the backend requires", func(ctx SpecContext) {
			if !e.Exp.PodNetwork {
				Skip("no routes without a pod network")
			}
			views := e.nodeViews(ctx)
			for _, v := range views {
				for _, peer := range views {
					if peer.Node.Name == v.Node.Name {
						continue
					}
					dst := peer.PodCIDR.Masked().String()
					switch e.Exp.RoutesVia {
					case profile.RoutesViaFlannel:
						Expect(hasRoute(v.Links.Routes, dst, peer.PodCIDR.Masked().Addr().String(), e.Exp.FlannelInterface, true)).To(BeTrue(),
							"node %s should route %s via %s dev %s onlink; routes: %+v", v.Node.Name, dst, peer.PodCIDR.Masked().Addr(), e.Exp.FlannelInterface, v.Links.Routes)
					case profile.RoutesViaNode:
						Expect(hasRoute(v.Links.Routes, dst, peer.IP, v.Links.DefaultDev, false)).To(BeTrue(),
							"node %s should route %s via node %s (%s) dev %s; routes: %+v", v.Node.Name, dst, peer.Node.Name, peer.IP, v.Links.DefaultDev, v.Links.Routes)
					default:
						Skip("no per-node route check for backend " + e.Exp.Backend)
					}
				}
			}
		})

		It("writes /run/flannel/subnet.env in agreement with the node", func(ctx SpecContext) {
			for _, v := range e.nodeViews(ctx) {
				if !e.Exp.PodNetwork {
					Expect(v.Links.SubnetEnvPresent).To(BeFalse(), "flannel-backend=none writes no subnet.env (node %s)", v.Node.Name)
					continue
				}
				Expect(v.Links.SubnetEnvPresent).To(BeTrue(), "node %s should have /run/flannel/subnet.env", v.Node.Name)
				env := v.Links.SubnetEnv
				Expect(env).To(HaveKeyWithValue("FLANNEL_NETWORK", e.Exp.ClusterCIDR.String()), "subnet.env on %s", v.Node.Name)
				Expect(env).To(HaveKeyWithValue("FLANNEL_SUBNET", netip.PrefixFrom(gatewayAddr(v.PodCIDR), v.PodCIDR.Bits()).String()), "subnet.env on %s", v.Node.Name)
				Expect(env).To(HaveKeyWithValue("FLANNEL_MTU", strconv.Itoa(e.Exp.PodMTU(v.uplinkMTU()))), "subnet.env on %s", v.Node.Name)
			}
		})

		It("gives pod interfaces the uplink MTU minus the backend overhead", func(ctx SpecContext) {
			if !e.Exp.PodNetwork {
				Skip("no pods run without a pod network")
			}
			for _, v := range e.nodeViews(ctx) {
				pod := e.Probe.Links(ctx, probe.InPod, v.Node.Name)
				Expect(pod).To(probe.Succeed(), "reading the probe pod's links on %s", v.Node.Name)
				var eth *api.Link
				for i := range pod.Links {
					if pod.Links[i].Name == pod.DefaultDev {
						eth = &pod.Links[i]
					}
				}
				Expect(eth).NotTo(BeNil(), "the pod on %s should have a default route device", v.Node.Name)
				Expect(eth.MTU).To(Equal(e.Exp.PodMTU(v.uplinkMTU())), "pod interface MTU on %s: uplink %d − overhead %d", v.Node.Name, v.uplinkMTU(), e.Exp.EncapOverhead)
			}
		})

		It("carries don't-fragment packets of exactly the pod MTU across nodes, and not one byte more", func(ctx SpecContext) {
			if !e.Exp.PodNetwork {
				Skip("no pods run without a pod network")
			}
			views := e.nodeViews(ctx)
			mtu := e.Exp.PodMTU(views[0].uplinkMTU())
			for _, pair := range e.Probe.CrossNodePairs() {
				to := e.Probe.PodIP(probe.InPod, pair.To)
				fits := e.Probe.Ping(ctx, probe.InPod, pair.From, to, mtu-28, true, probe.Count(2))
				Expect(fits).To(probe.Succeed(), "DF ping with a %d-byte packet (the MTU) %s", mtu, pair)
				over := e.Probe.Ping(ctx, probe.InPod, pair.From, to, mtu-27, true, probe.Count(1), probe.Timeout(time.Second))
				Expect(over).To(probe.Fail(), "DF ping with a %d-byte packet (MTU+1) %s must not get through", mtu+1, pair)
			}
		})

		It("reaches pods on every node from the host network of every node", func(ctx SpecContext) {
			if !e.Exp.PodNetwork {
				Skip("no pods run without a pod network")
			}
			for _, from := range e.Probe.Nodes(probe.OnHost) {
				for _, to := range e.Probe.Nodes(probe.InPod) {
					target := net.JoinHostPort(e.Probe.PodIP(probe.InPod, to), strconv.Itoa(probe.TCPPort))
					Expect(e.Probe.Dial(ctx, probe.OnHost, from, api.ProtoTCP, target)).To(probe.Succeed(), "TCP from node %s's host network to the pod on %s", from, to)
				}
			}
		})

		hostGWFaultControl(e)
	})
}

// flannelBackendType is the value flannel writes in the backend-type annotation.
func flannelBackendType(backend string) string {
	if backend == profile.BackendWireGuardNative {
		return "extension"
	}
	return backend
}

// hostGWFaultControl removes one node's route to another node's podCIDR: traffic over that
// route must fail at once, and flannel (which re-checks its host-gw routes periodically)
// must put the route back without the suite's help.
func hostGWFaultControl(e *clusterEnv) {
	It("fails traffic over a removed host-gw route, and flannel restores the route", Label("control"), func(ctx SpecContext) {
		if e.Exp.Backend != profile.BackendHostGW {
			Skip("the route removal control applies to flannel-backend=host-gw only")
		}
		e.ownClusterOnly("fault injection")
		views := e.nodeViews(ctx)
		from, to := views[0], views[len(views)-1]
		dst := to.PodCIDR.Masked().String()
		By("deleting the route to " + dst + " on " + from.Node.Name)
		Expect(e.Probe.NodeExec(ctx, from.Node.Name, "ip", "route", "del", dst)).To(probe.Succeed(), "deleting route %s on %s", dst, from.Node.Name)
		DeferCleanup(func(ctx context.Context) {
			// Put the route back if flannel has not: later specs need it.
			e.Probe.NodeExec(ctx, from.Node.Name, "ip", "route", "replace", dst, "via", to.IP, "dev", from.Links.DefaultDev)
		})
		start := time.Now()
		target := net.JoinHostPort(e.Probe.PodIP(probe.InPod, to.Node.Name), strconv.Itoa(probe.TCPPort))
		Expect(e.Probe.Dial(ctx, probe.InPod, from.Node.Name, api.ProtoTCP, target, probe.Timeout(time.Second))).To(probe.Fail(),
			"TCP %s → %s must fail without the route to %s", from.Node.Name, to.Node.Name, dst)

		By("waiting for flannel to restore the route")
		Eventually(ctx, func(ctx context.Context) []api.Route {
			return e.Probe.Links(ctx, probe.OnHost, from.Node.Name).Routes
		}).WithTimeout(60*time.Second).Should(ContainElement(And(
			HaveField("Dst", dst), HaveField("Gw", to.IP))), "flannel should restore the route to %s via %s on %s within 60s", dst, to.IP, from.Node.Name)
		restored := time.Since(start)
		Eventually(ctx, func(ctx context.Context) api.DialResult {
			return e.Probe.Dial(ctx, probe.InPod, from.Node.Name, api.ProtoTCP, target, probe.Timeout(time.Second))
		}).WithTimeout(20*time.Second).Should(probe.Succeed(), "TCP %s → %s should work again once the route is back", from.Node.Name, to.Node.Name)
		AddReportEntry("host-gw route control", "route restored by flannel after "+restored.Round(time.Millisecond).String())
	})
}
