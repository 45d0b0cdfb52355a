package network

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/k3snet/e2e/framework/probe"
)

// containerdLog is where the k3s agent's containerd writes its log on every node.
const containerdLog = "/var/lib/rancher/k3s/agent/containerd/containerd.log"

// systemSpecs checks the cluster k3s itself deploys: every kube-system pod up, and, for the
// offline lab's images, that nothing was pulled (every image came from the node image).
func systemSpecs(e *clusterEnv) {
	Context("system", Label("area:system"), func() {
		It("runs every kube-system pod (jobs completed)", func(ctx SpecContext) {
			if !e.Exp.PodNetwork {
				Skip("kube-system pods need a pod network")
			}
			Eventually(ctx, func(g Gomega, ctx context.Context) []string {
				pods, err := e.Kube.Pods(ctx, "kube-system", "")
				g.Expect(err).NotTo(HaveOccurred())
				var bad []string
				for _, p := range pods {
					switch {
					case p.Status.Phase == corev1.PodSucceeded:
					case p.Status.Phase == corev1.PodRunning && podReady(&p):
					default:
						bad = append(bad, p.Name+" ("+string(p.Status.Phase)+")")
					}
				}
				return bad
			}).WithTimeout(4*time.Minute).Should(BeEmpty(), "every kube-system pod should be Running and Ready, or Succeeded")
		})

		It("pulled no image: the offline lab's node image carried them all", Label("area:lab"), func(ctx SpecContext) {
			if settings.ImageSource != "lab" || e.Cluster == nil {
				Skip("applies to the offline lab's images only (IMAGE_SOURCE=" + settings.ImageSource + ")")
			}
			for _, n := range e.Probe.Nodes(probe.OnHost) {
				r := e.Probe.NodeExec(ctx, n, "cat", containerdLog)
				Expect(r).To(probe.Succeed(), "reading %s on %s", containerdLog, n)
				Expect(strings.Count(r.Stdout, "PullImage")).To(BeZero(), "containerd on %s must not have pulled any image", n)
			}
		})
	})
}
