package network

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/k3snet/e2e/framework/cluster"
)

// refusalBound is how long k3s may take to refuse a configuration it no longer supports.
// k3s checks the flannel backend while preparing the agent, seconds after start; k3d notices
// the exited server at its next log poll. A minute leaves room for a loaded machine.
const refusalBound = 60 * time.Second

// refusalSpecs checks a profile that k3s must refuse (a removed flannel backend): the cluster
// must not come up, k3s must say why, and nothing may be left behind.
func refusalSpecs(e *clusterEnv) {
	It("refuses to start, with k3s naming the unsupported backend", Label("area:pod-network", "area:dataplane"), func(ctx SpecContext) {
		start := time.Now()
		c, err := cluster.Create(ctx, e.Profile, cluster.Options{
			RunID: settings.RunID, Image: settings.K3sImage, Log: GinkgoWriter, Timeout: refusalBound,
		})
		took := time.Since(start)
		if c != nil {
			DeferCleanup(func(ctx context.Context) { Expect(c.Delete(ctx)).To(Succeed()) })
		}
		Expect(err).To(HaveOccurred(), "k3s %s must refuse flannel-backend=%s", settings.K3sVersion, e.Exp.Backend)
		var ce *cluster.CreateError
		Expect(errors.As(err, &ce)).To(BeTrue(), "the failure should come from the cluster start, got: %v", err)
		var found []string
		for node, log := range ce.Logs {
			if strings.Contains(log, e.Exp.RefusalMessage) {
				found = append(found, node)
			}
		}
		Expect(found).NotTo(BeEmpty(), "a server log should contain %q; logs: %s", e.Exp.RefusalMessage, ce.LogTails(5))
		Expect(took).To(BeNumerically("<", refusalBound+60*time.Second), "the refusal should be seen within %s", refusalBound)
		AddReportEntry("refusal "+e.Profile.Name, fmt.Sprintf("refused in %s: %q found in %v", took.Round(time.Second), e.Exp.RefusalMessage, found))
		Expect(leftovers(ctx, cluster.Name(e.Profile.Name, settings.RunID))).To(BeEmpty(), "a refused cluster must leave nothing behind")
	})
}

// requireWireGuard skips the whole profile, before any cluster exists, when the kernel the
// nodes would share cannot create WireGuard links: k3s would crash-loop on every node.
func (e *clusterEnv) requireWireGuard(ctx context.Context) {
	GinkgoHelper()
	r, err := cluster.WireGuardSupport(ctx, settings.NetprobeImage)
	Expect(err).NotTo(HaveOccurred(), "running the WireGuard preflight")
	Expect(r.OK).To(BeTrue(), "the WireGuard preflight could not run: %s", r.Error)
	if !r.Supported {
		Skip(fmt.Sprintf("kernel has no WireGuard support (%s): flannel-backend=%s cannot run here", r.Reason, e.Exp.Backend))
	}
}

func leftovers(ctx context.Context, name string) []string {
	GinkgoHelper()
	l, err := cluster.Leftovers(ctx, name)
	Expect(err).NotTo(HaveOccurred())
	return l
}
