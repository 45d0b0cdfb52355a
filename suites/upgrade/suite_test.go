// Package upgrade is the pre-upgrade validation: it boots a cluster of one profile at the
// current k3s (FROM), upgrades it node by node to the target (TO) the way k3s documents a
// manual upgrade — servers first, one at a time, then agents, each node restarted on the new
// image with its data directory kept — while monitors measure how long pod traffic, a Service
// and cluster DNS are interrupted, and then checks the pod network on TO.
//
// It runs only when told what to upgrade to (`make preupgrade`, or UPGRADE_TO /
// UPGRADE_TO_IMAGE in the environment); otherwise every spec is skipped, so `./suites/...`
// can include it.
package upgrade

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/k3snet/e2e/framework/cluster"
	"github.com/k3snet/e2e/framework/config"
)

// Read while the spec tree is built: a bad profile, version or setting fails the run before
// any container exists.
var (
	settings config.Settings
	target   *plan
	loadErr  error
)

// load runs while the spec tree is built (package variables are initialised before init
// functions run, so it cannot be an init).
func load() {
	settings, loadErr = config.Load()
	if loadErr != nil {
		return
	}
	target, loadErr = planFromEnv(settings)
}

func TestUpgrade(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyPollingInterval(time.Second)
	RunSpecs(t, "k3snet pre-upgrade validation")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	if loadErr == nil && target == nil {
		Skip("pre-upgrade validation runs when UPGRADE_TO or UPGRADE_TO_IMAGE names the target (make preupgrade TO=...)")
	}
	Expect(loadErr).NotTo(HaveOccurred(), "the upgrade plan must be valid before any cluster is created")
	if settings.Existing {
		Skip("pre-upgrade validation replaces nodes, so it runs only on clusters it creates, not with EXISTING_CLUSTER=1")
	}
	Expect(target.resolve(ctx)).To(Succeed(), "the FROM and TO images must exist and the upgrade must be possible before any cluster is created")
	GinkgoWriter.Printf("run %s: profile %s, upgrade %s → %s, probe image %s\n",
		settings.RunID, target.Profile.Name, target.From, target.To, settings.NetprobeImage)
	for _, w := range target.Warnings {
		GinkgoWriter.Printf("WARNING: %s\n", w)
	}
	if len(target.Warnings) > 0 {
		AddReportEntry("upgrade warnings", target.Warnings)
	}
}, NodeTimeout(15*time.Minute))

// The safety net behind the cluster's own cleanup: whatever this run created and did not
// remove (a crash between two steps, an interrupt) goes now.
var _ = AfterSuite(func(ctx SpecContext) {
	if settings.Keep != config.KeepNever || settings.RunID == "" || target == nil {
		return
	}
	swept, err := cluster.Sweep(context.WithoutCancel(ctx), settings.RunID)
	if len(swept) > 0 {
		GinkgoWriter.Printf("swept leftovers of run %s: %v\n", settings.RunID, swept)
	}
	Expect(err).NotTo(HaveOccurred(), "removing what run %s left behind", settings.RunID)
}, NodeTimeout(3*time.Minute))

var _ = func() bool {
	load()
	describeUpgrade(target)
	return true
}()
