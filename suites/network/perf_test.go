package network

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/probe"
	"github.com/k3snet/e2e/framework/report"
)

// perfDuration is how long each throughput and latency measurement runs: long enough for a
// stable figure on a loaded two-core machine, short enough to keep perf in the default run
// (about 15 s per profile).
const perfDuration = 3 * time.Second

// perfSpecs measures the data plane of every backend that runs: TCP throughput and
// request-response latency between two pods on one node (the bridge) and on two nodes (the
// backend's encapsulation or routes). With PERF_BASELINE set, a regression beyond
// PERF_TOLERANCE (default 10 %) fails the spec.
func perfSpecs(e *clusterEnv) {
	It("measures same-node and cross-node throughput and latency", Label("area:perf"), func(ctx SpecContext) {
		if !e.Exp.PodNetwork {
			Skip("no pods run without a pod network")
		}
		nodes := e.Probe.Nodes(probe.InPod)
		measure := func(ctx context.Context, scope, from string, targetIP string) report.PerfMeasurement {
			target := net.JoinHostPort(targetIP, strconv.Itoa(probe.PerfPort))
			stream := e.Probe.Perf(ctx, probe.InPod, from, api.PerfStream, target, perfDuration)
			Expect(stream).To(probe.Succeed(), "%s TCP stream from %s to %s", scope, from, target)
			Expect(stream.BitsPerSecond).To(BeNumerically(">", 0), "%s throughput from %s", scope, from)
			rr := e.Probe.Perf(ctx, probe.InPod, from, api.PerfRR, target, perfDuration)
			Expect(rr).To(probe.Succeed(), "%s request-response from %s to %s", scope, from, target)
			Expect(rr.Count).To(BeNumerically(">", 0), "%s request-response from %s", scope, from)
			m := report.MeasurementFrom(e.Exp.Backend, scope, stream, rr)
			AddReportEntry(report.PerfEntry(e.Profile.Name, m))
			return m
		}
		ms := []report.PerfMeasurement{
			measure(ctx, report.ScopeSameNode, nodes[0], e.Probe.PodIP(probe.InPeer, nodes[0])),
			measure(ctx, report.ScopeCrossNode, nodes[0], e.Probe.PodIP(probe.InPod, nodes[1])),
		}
		path := os.Getenv("PERF_BASELINE")
		if path == "" {
			return
		}
		base, err := report.LoadBaseline(path)
		Expect(err).NotTo(HaveOccurred(), "reading PERF_BASELINE %s", path)
		tol := report.DefaultTolerance
		if v := os.Getenv("PERF_TOLERANCE"); v != "" {
			tol, err = strconv.ParseFloat(v, 64)
			Expect(err).NotTo(HaveOccurred(), "PERF_TOLERANCE=%q: want a fraction such as 0.1", v)
		}
		for _, m := range ms {
			err := base.Compare(e.Profile.Name, m, tol)
			if errors.Is(err, report.ErrNoBaseline) {
				GinkgoWriter.Printf("[%s] no %s baseline in %s: nothing to compare\n", e.Profile.Name, m.Scope, path)
				continue
			}
			Expect(err).NotTo(HaveOccurred(), "%s %s performance against baseline %s", e.Profile.Name, m.Scope, path)
		}
	})
}
