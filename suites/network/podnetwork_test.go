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
)

// Protocols of the pod-to-pod checks.
const (
	protoICMP = "icmp"
	protoTCP  = api.ProtoTCP
	protoUDP  = api.ProtoUDP
)

// send runs one probe of proto from the w-probe on node `from` to pod IP `to`.
func (e *clusterEnv) send(ctx context.Context, w probe.Where, from, proto, to string, opts ...probe.Opt) any {
	switch proto {
	case protoICMP:
		return e.Probe.Ping(ctx, w, from, to, 56, false, append([]probe.Opt{probe.Count(3)}, opts...)...)
	case protoTCP:
		return e.Probe.Dial(ctx, w, from, api.ProtoTCP, net.JoinHostPort(to, strconv.Itoa(probe.TCPPort)), opts...)
	default:
		return e.Probe.Dial(ctx, w, from, api.ProtoUDP, net.JoinHostPort(to, strconv.Itoa(probe.UDPPort)), opts...)
	}
}

func podNetworkSpecs(e *clusterEnv) {
	Context("pod network", Label("area:pod-network"), func() {
		BeforeEach(func() {
			if !e.Exp.PodNetwork {
				Skip("profile " + e.Profile.Name + " runs no pod network (flannel-backend=" + e.Exp.Backend + ")")
			}
		})

		It("has every node Ready", func(ctx SpecContext) {
			nodes, err := e.Kube.Nodes(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(nodes).To(HaveLen(e.Exp.Nodes), "profile %s asks for %d nodes", e.Profile.Name, e.Exp.Nodes)
			for i := range nodes {
				Expect(kubeReady(&nodes[i])).To(BeTrue(), "node %s should be Ready", nodes[i].Name)
			}
		})

		It("gives each node a distinct podCIDR of the configured size inside the cluster CIDR", func(ctx SpecContext) {
			nodes, err := e.Kube.Nodes(ctx)
			Expect(err).NotTo(HaveOccurred())
			cidr := netip.MustParsePrefix(e.Exp.ClusterCIDR.String())
			var seen []netip.Prefix
			for _, n := range nodes {
				Expect(n.Spec.PodCIDR).NotTo(BeEmpty(), "node %s should have a podCIDR", n.Name)
				pc, err := netip.ParsePrefix(n.Spec.PodCIDR)
				Expect(err).NotTo(HaveOccurred(), "node %s podCIDR %q", n.Name, n.Spec.PodCIDR)
				Expect(pc.Bits()).To(Equal(e.Exp.NodeCIDRMaskSize), "node %s podCIDR %s should be a /%d", n.Name, pc, e.Exp.NodeCIDRMaskSize)
				Expect(cidr.Contains(pc.Addr())).To(BeTrue(), "node %s podCIDR %s should lie inside cluster-cidr %s", n.Name, pc, cidr)
				for _, s := range seen {
					Expect(s.Overlaps(pc)).To(BeFalse(), "node %s podCIDR %s overlaps %s of another node", n.Name, pc, s)
				}
				seen = append(seen, pc)
			}
		})

		It("places every probe pod's IP inside its node's podCIDR", func(ctx SpecContext) {
			nodes, err := e.Kube.Nodes(ctx)
			Expect(err).NotTo(HaveOccurred())
			for _, n := range nodes {
				pc := netip.MustParsePrefix(n.Spec.PodCIDR)
				for _, w := range []probe.Where{probe.InPod, probe.InPeer} {
					ip := e.Probe.PodIP(w, n.Name)
					Expect(ip).NotTo(BeEmpty(), "node %s should run a %s probe", n.Name, w)
					Expect(pc.Contains(netip.MustParseAddr(ip))).To(BeTrue(), "%s probe IP %s on node %s should lie in its podCIDR %s", w, ip, n.Name, pc)
				}
			}
		})

		DescribeTable("delivers traffic between pods on every ordered pair of nodes",
			func(ctx SpecContext, proto string) {
				pairs := e.Probe.CrossNodePairs()
				Expect(pairs).To(HaveLen(e.Exp.Nodes*(e.Exp.Nodes-1)), "a probe pod should run on every node")
				for _, pair := range pairs {
					r := e.send(ctx, probe.InPod, pair.From, proto, e.Probe.PodIP(probe.InPod, pair.To))
					Expect(r).To(probe.Succeed(), "%s from the pod on %s to the pod on %s", proto, pair.From, pair.To)
				}
			},
			Entry("ICMP", protoICMP), Entry("TCP", protoTCP), Entry("UDP", protoUDP),
		)

		DescribeTable("delivers traffic between two pods on the same node",
			func(ctx SpecContext, proto string) {
				for _, n := range e.Probe.Nodes(probe.InPod) {
					r := e.send(ctx, probe.InPod, n, proto, e.Probe.PodIP(probe.InPeer, n))
					Expect(r).To(probe.Succeed(), "%s between the two probe pods on %s", proto, n)
				}
			},
			Entry("ICMP", protoICMP), Entry("TCP", protoTCP), Entry("UDP", protoUDP),
		)

		It("reaches the ClusterIP Service from a pod on every node", func(ctx SpecContext) {
			svc := &corev1.Service{}
			Expect(e.Kube.Resources().Get(ctx, probe.Service, e.Probe.Namespace, svc)).To(Succeed())
			Expect(e.Exp.ServiceCIDR.Contains(netip.MustParseAddr(svc.Spec.ClusterIP))).To(BeTrue(),
				"ClusterIP %s should lie in service-cidr %s", svc.Spec.ClusterIP, e.Exp.ServiceCIDR)
			target := net.JoinHostPort(svc.Spec.ClusterIP, "80")
			for _, n := range e.Probe.Nodes(probe.InPod) {
				r := e.Probe.Dial(ctx, probe.InPod, n, api.ProtoHTTP, target, probe.Count(3))
				Expect(r).To(probe.Succeed(), "HTTP from the pod on %s to Service %s (%s)", n, probe.Service, target)
				Expect(r.Reply).To(HavePrefix("netprobe-"), "the answer should come from a probe pod")
			}
		})

		vxlanFaultControl(e)
	})
}

// vxlanFaultControl proves the cross-node checks can fail: with VXLAN (UDP 8472) dropped on
// one node, traffic to and from that node must fail while the other pairs still work, and
// everything must recover once the drop is removed.
func vxlanFaultControl(e *clusterEnv) {
	It("fails cross-node traffic of a node whose VXLAN packets are dropped, and recovers after", Label("control"), func(ctx SpecContext) {
		if e.Exp.Backend != "vxlan" {
			Skip("the VXLAN drop control applies to flannel-backend=vxlan only")
		}
		e.ownClusterOnly("fault injection")
		nodes := e.Probe.Nodes(probe.InPod)
		victim := nodes[len(nodes)-1]
		rule := []string{"INPUT", "-p", "udp", "--dport", strconv.Itoa(e.Exp.VXLANPort), "-m", "comment", "--comment", "k3snet-fault", "-j", "DROP"}
		By("dropping UDP " + strconv.Itoa(e.Exp.VXLANPort) + " on " + victim)
		Expect(e.Probe.NodeExec(ctx, victim, append([]string{"iptables", "-I"}, rule...)...)).To(probe.Succeed(), "inserting the drop rule on %s", victim)
		removed := false
		remove := func(ctx context.Context) {
			if !removed {
				Expect(e.Probe.NodeExec(ctx, victim, append([]string{"iptables", "-D"}, rule...)...)).To(probe.Succeed(), "removing the drop rule on %s", victim)
				removed = true
			}
		}
		DeferCleanup(remove)

		start := time.Now()
		for _, pair := range e.Probe.CrossNodePairs() {
			for _, proto := range []string{protoTCP, protoUDP, protoICMP} {
				r := e.send(ctx, probe.InPod, pair.From, proto, e.Probe.PodIP(probe.InPod, pair.To), probe.Timeout(time.Second))
				if pair.From == victim || pair.To == victim {
					Expect(r).To(probe.Fail(), "%s %s must fail while %s drops VXLAN", proto, pair, victim)
				} else {
					Expect(r).To(probe.Succeed(), "%s %s does not involve %s and must still work", proto, pair, victim)
				}
			}
		}
		detected := time.Since(start)

		By("removing the drop rule")
		remove(ctx)
		start = time.Now()
		for _, pair := range e.Probe.CrossNodePairs() {
			if pair.From != victim && pair.To != victim {
				continue
			}
			Eventually(ctx, func(ctx context.Context) any {
				return e.send(ctx, probe.InPod, pair.From, protoTCP, e.Probe.PodIP(probe.InPod, pair.To), probe.Timeout(time.Second))
			}).WithTimeout(30*time.Second).Should(probe.Succeed(), "TCP %s should recover within 30s of removing the drop", pair)
		}
		recovered := time.Since(start)
		AddReportEntry("vxlan drop control", "failures asserted in "+detected.Round(time.Millisecond).String()+
			", all pairs recovered in "+recovered.Round(time.Millisecond).String())
	})
}

func kubeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
