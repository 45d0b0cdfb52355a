// Package network is the k3s network conformance suite: one cluster per profile, booted with
// the k3d library, and specs grouped by the promise they check (pod network, data plane, DNS,
// services, load balancers, add-ons). Profiles are data (fixtures/profiles); labels
// `profile:<name>`, `backend:<name>`, `area:<name>` select any slice with --label-filter.
package network

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/k3snet/e2e/fixtures/profiles"
	"github.com/k3snet/e2e/framework/cluster"
	"github.com/k3snet/e2e/framework/config"
	"github.com/k3snet/e2e/framework/profile"
	"github.com/k3snet/e2e/framework/report"
)

// Loaded while the spec tree is built, so that a bad profile or setting fails the run
// before any container exists.
var (
	settings   config.Settings
	k3sVersion profile.Version
	selected   []*profile.Profile
	loadErr    error
)

// load runs while the spec tree is built (package variable initialisation comes before
// init functions, so it cannot be an init).
func load() {
	var err error
	settings, loadErr = config.Load()
	if loadErr != nil {
		return
	}
	all, err := profile.LoadFS(profiles.FS)
	if err != nil {
		loadErr = err
		return
	}
	// Entries ending in .yaml are profile files outside the matrix (a production-like
	// profile for pre-upgrade or existing-cluster runs); the rest name matrix profiles.
	var names []string
	for _, f := range strings.FieldsFunc(settings.Profiles, func(r rune) bool { return r == ',' || r == ' ' }) {
		if strings.HasSuffix(f, ".yaml") || strings.HasSuffix(f, ".yml") {
			p, err := profile.Load(f)
			if err != nil {
				loadErr = err
				return
			}
			selected = append(selected, p)
			continue
		}
		names = append(names, f)
	}
	if len(names) > 0 || len(selected) == 0 {
		named, err := profile.Select(all, strings.Join(names, ","))
		if err != nil {
			loadErr = err
			return
		}
		selected = append(selected, named...)
	}
	if k3sVersion, err = profile.ParseVersion(settings.K3sVersion); err != nil {
		loadErr = fmt.Errorf("K3S_VERSION: %w", err)
		return
	}
	for _, p := range selected {
		if err := p.ValidateFor(k3sVersion); err != nil {
			loadErr = err
			return
		}
	}
}

func TestNetwork(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyPollingInterval(time.Second)
	RunSpecs(t, "k3snet network conformance")
}

var _ = BeforeSuite(func() {
	if loadErr != nil {
		return // reported by the spec above
	}
	GinkgoWriter.Printf("run %s: k3s %s, node image %s (%s images), profiles: %s\n",
		settings.RunID, settings.K3sVersion, settings.K3sImage, settings.ImageSource, profileNames(selected))
})

// The safety net behind each cluster's own cleanup: whatever this run created and did not
// remove (a crash between two steps, an interrupt) goes now. It runs once, on process 1
// after every parallel process has finished, so it never removes a cluster still in use.
var _ = SynchronizedAfterSuite(func() {}, func(ctx SpecContext) {
	if settings.Keep != config.KeepNever || settings.RunID == "" {
		return
	}
	swept, err := cluster.Sweep(context.WithoutCancel(ctx), settings.RunID)
	if len(swept) > 0 {
		GinkgoWriter.Printf("swept leftovers of run %s: %v\n", settings.RunID, swept)
	}
	Expect(err).NotTo(HaveOccurred(), "removing what run %s left behind", settings.RunID)
}, NodeTimeout(3*time.Minute))

// The run report: summary.md and timings.json in $ARTIFACTS, and the job summary in GitHub
// Actions. ReportAfterSuite sees the specs of every parallel process.
var _ = ReportAfterSuite("k3snet run report", func(rep Report) {
	if settings.Artifacts == "" {
		return // settings did not load; BeforeSuite reported why
	}
	run := &report.Run{RunID: settings.RunID, K3sVersion: settings.K3sVersion, K3sImage: settings.K3sImage, ImageSource: settings.ImageSource}
	Expect(run.Write(settings.Artifacts, rep)).To(Succeed(), "writing the run report into %s", settings.Artifacts)
	Expect(run.AppendGitHubSummary(os.Getenv("GITHUB_STEP_SUMMARY"))).To(Succeed(), "appending to the GitHub job summary")
})

func profileNames(ps []*profile.Profile) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p.Name
	}
	return s
}

// The spec tree: one Ordered container per selected profile, each with its own cluster. A
// bad profile or setting becomes one failing spec, so the run fails before any container.
var _ = func() bool {
	load()
	if loadErr != nil {
		It("has valid profiles and settings", func() {
			Fail("profiles and settings must be valid before any cluster is created: " + loadErr.Error())
		})
		return true
	}
	for _, p := range selected {
		describeProfile(p)
	}
	return true
}()
