package network

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/k3snet/e2e/framework/kube"
	"github.com/k3snet/e2e/framework/probe"
)

// noCNISpecs checks what k3s promises with flannel-backend=none: it installs no network, so
// nodes wait for a CNI the operator brings, and only host-network pods can run.
func noCNISpecs(e *clusterEnv) {
	Context("without a CNI", Label("area:pod-network"), func() {
		BeforeEach(func() {
			if e.Exp.PodNetwork {
				Skip("profile " + e.Profile.Name + " runs flannel (" + e.Exp.Backend + ")")
			}
		})

		It("reports every node NotReady because the CNI is not initialized", func(ctx SpecContext) {
			nodes, err := e.Kube.Nodes(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(nodes).To(HaveLen(e.Exp.Nodes))
			for i := range nodes {
				cond := kube.NodeReady(&nodes[i])
				Expect(cond).NotTo(BeNil(), "node %s should report a Ready condition", nodes[i].Name)
				Expect(cond.Status).To(Equal(corev1.ConditionFalse), "node %s must not be Ready without a CNI", nodes[i].Name)
				Expect(strings.ToLower(cond.Message)).To(ContainSubstring("cni plugin not initialized"),
					"node %s should say why it is not Ready", nodes[i].Name)
			}
		})

		It("runs host-network probes but gives pod-network pods no sandbox", func(ctx SpecContext) {
			Expect(e.Probe.Nodes(probe.OnHost)).To(HaveLen(e.Exp.Nodes), "the host-network probe should run on every node")
			// Not a convergence: with no CNI the pods can never start, so observe a bounded
			// window and require that none did.
			Consistently(ctx, func(g Gomega, ctx context.Context) []string {
				pods, err := e.Kube.Pods(ctx, e.Probe.Namespace, "app.kubernetes.io/name="+probe.PodDS)
				g.Expect(err).NotTo(HaveOccurred())
				var running []string
				for _, p := range pods {
					if p.Status.Phase == corev1.PodRunning || p.Status.PodIP != "" {
						running = append(running, p.Name+" on "+p.Spec.NodeName)
					}
				}
				return running
			}).WithTimeout(15*time.Second).Should(BeEmpty(), "no pod-network pod may get an IP without a CNI")
		})
	})
}
