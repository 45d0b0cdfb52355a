package network

import (
	"context"
	"net"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k3snet/e2e/fixtures/manifests"
	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/probe"
)

// policyConvergence bounds how long kube-router's policy controller (embedded in k3s) may
// take to turn a NetworkPolicy change into iptables rules on every node.
const policyConvergence = 45 * time.Second

func (e *clusterEnv) applyPolicy(ctx context.Context, name string) {
	GinkgoHelper()
	m, err := manifests.Render(name, nil)
	Expect(err).NotTo(HaveOccurred())
	Expect(e.Kube.Apply(ctx, m, e.Probe.Namespace)).To(Succeed(), "applying %s", name)
}

func (e *clusterEnv) deletePolicies(ctx context.Context) {
	for _, n := range []string{"k3snet-default-deny", "k3snet-allow-peer-tcp"} {
		_ = e.Kube.Resources().Delete(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: e.Probe.Namespace}})
	}
}

func policySpecs(e *clusterEnv) {
	Context("network policy", Label("area:policy", "area:pod-network"), func() {
		BeforeEach(func() {
			if !e.Exp.PodNetwork {
				Skip("no pods run without a pod network")
			}
		})

		tcpTo := func(ctx context.Context, w probe.Where, from, to string) api.DialResult {
			target := net.JoinHostPort(e.Probe.PodIP(probe.InPod, to), strconv.Itoa(probe.TCPPort))
			return e.Probe.Dial(ctx, w, from, api.ProtoTCP, target, probe.Timeout(time.Second))
		}

		It("enforces default-deny ingress across nodes, and an allow rule re-opens exactly its flow", func(ctx SpecContext) {
			if !e.Exp.NetworkPolicyEnforced {
				Skip("the network policy controller is disabled in profile " + e.Profile.Name)
			}
			pairs := e.Probe.CrossNodePairs()
			pair := pairs[0]
			DeferCleanup(e.deletePolicies)

			By("denying all ingress in " + e.Probe.Namespace)
			e.applyPolicy(ctx, "policy-deny.yaml")
			Eventually(ctx, func(ctx context.Context) api.DialResult {
				return tcpTo(ctx, probe.InPod, pair.From, pair.To)
			}).WithTimeout(policyConvergence).Should(probe.Fail(), "default-deny should block TCP %s within %s", pair, policyConvergence)
			for _, p := range pairs {
				Expect(tcpTo(ctx, probe.InPod, p.From, p.To)).To(probe.Fail(), "TCP %s must be blocked by default-deny", p)
				Expect(tcpTo(ctx, probe.InPeer, p.From, p.To)).To(probe.Fail(), "TCP from the peer pod %s must be blocked by default-deny", p)
			}

			By("allowing TCP from netprobe-peer pods to netprobe pods")
			e.applyPolicy(ctx, "policy-allow-peer.yaml")
			Eventually(ctx, func(ctx context.Context) api.DialResult {
				return tcpTo(ctx, probe.InPeer, pair.From, pair.To)
			}).WithTimeout(policyConvergence).Should(probe.Succeed(), "the allow rule should open TCP peer %s within %s", pair, policyConvergence)
			for _, p := range pairs {
				Expect(tcpTo(ctx, probe.InPeer, p.From, p.To)).To(probe.Succeed(), "TCP from the peer pod %s is allowed", p)
				Expect(tcpTo(ctx, probe.InPod, p.From, p.To)).To(probe.Fail(), "TCP from the netprobe pod %s is still denied", p)
			}

			By("removing the policies")
			e.deletePolicies(ctx)
			for _, p := range pairs {
				Eventually(ctx, func(ctx context.Context) api.DialResult {
					return tcpTo(ctx, probe.InPod, p.From, p.To)
				}).WithTimeout(policyConvergence).Should(probe.Succeed(), "TCP %s should work again once the policies are gone", p)
			}
		})

		It("does not enforce NetworkPolicy when the policy controller is disabled", func(ctx SpecContext) {
			if e.Exp.NetworkPolicyEnforced {
				Skip("the network policy controller runs in profile " + e.Profile.Name)
			}
			DeferCleanup(e.deletePolicies)
			e.applyPolicy(ctx, "policy-deny.yaml")
			// The same window in which an enforcing cluster blocks the flow.
			pair := e.Probe.CrossNodePairs()[0]
			Consistently(ctx, func(ctx context.Context) api.DialResult {
				return tcpTo(ctx, probe.InPod, pair.From, pair.To)
			}).WithTimeout(policyConvergence/3).WithPolling(3*time.Second).Should(probe.Succeed(),
				"with --disable-network-policy, default-deny must not block TCP %s", pair)
		})
	})
}
