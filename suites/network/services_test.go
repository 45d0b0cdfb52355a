package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
	"github.com/k3snet/e2e/framework/probe"
)

const (
	// svclbPort is the port of the suite's servicelb Service. klipper-lb claims the service
	// port as a hostPort on every node, and traefik's Service already holds 80 and 443.
	svclbPort = 8090
	// svclbNameLabel is the label k3s's servicelb puts on the DaemonSet and pods it runs for
	// a LoadBalancer Service (value: the Service name; they live in kube-system).
	svclbNameLabel = "svccontroller.k3s.cattle.io/svcname"
	// servicelbConvergence bounds the time from creating a LoadBalancer Service to klipper-lb
	// running on every node and servicelb publishing all node IPs: 15s measured on a busy
	// 2-core machine (the servicelb spec reports it each run); the bound leaves room for more.
	servicelbConvergence = 90 * time.Second
	// servicelbAbsenceWindow is how long a LoadBalancer Service is watched for klipper-lb
	// when servicelb is disabled. With servicelb on, the svclb DaemonSet and its pods exist
	// 2-3s after the Service (measured on the vxlan profile), so nothing appearing in five
	// times that means nothing will.
	servicelbAbsenceWindow = 15 * time.Second
)

// lbService is a LoadBalancer Service in the probe namespace sending port to the HTTP server
// of the netprobe pods.
func (e *clusterEnv) lbService(name string, port int32, annotations map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: e.ns(), Annotations: annotations,
			Labels: map[string]string{"app.kubernetes.io/part-of": "k3snet-e2e"},
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app.kubernetes.io/name": probe.PodDS},
			Ports: []corev1.ServicePort{{
				Name: "http", Port: port, TargetPort: intstr.FromInt32(probe.HTTPPort), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// createService creates svc and deletes it again when the spec ends. It returns the time of
// creation, for measuring how long address assignment takes.
func (e *clusterEnv) createService(ctx context.Context, svc *corev1.Service) time.Time {
	GinkgoHelper()
	Expect(e.Kube.Resources().Create(ctx, svc)).To(Succeed(), "creating Service %s/%s", svc.Namespace, svc.Name)
	created := time.Now()
	DeferCleanup(e.deleteService, svc.Namespace, svc.Name)
	return created
}

// deleteService deletes a Service and waits until it is gone, so that its address (and, with
// servicelb, its hostPorts) are free for whatever comes next.
func (e *clusterEnv) deleteService(ctx context.Context, ns, name string) {
	GinkgoHelper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	err := e.Kube.Resources().Delete(ctx, svc)
	if apierrors.IsNotFound(err) {
		return
	}
	Expect(err).NotTo(HaveOccurred(), "deleting Service %s/%s", ns, name)
	Eventually(ctx, func(ctx context.Context) bool {
		return apierrors.IsNotFound(e.Kube.Resources().Get(ctx, name, ns, &corev1.Service{}))
	}).WithTimeout(30*time.Second).Should(BeTrue(), "Service %s/%s should be gone within 30s of its deletion", ns, name)
}

// lbIngress returns the addresses of a Service's status.loadBalancer.ingress, sorted. It
// returns its error instead of asserting: it is polled, and a failed read is one failed poll.
func (e *clusterEnv) lbIngress(ctx context.Context, ns, name string) ([]string, error) {
	svc := &corev1.Service{}
	if err := e.Kube.Resources().Get(ctx, name, ns, svc); err != nil {
		return nil, fmt.Errorf("reading Service %s/%s: %w", ns, name, err)
	}
	var ips []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
	}
	sort.Strings(ips)
	return ips, nil
}

// nodeIPs returns every node's InternalIP, sorted, and the node names by IP.
func (e *clusterEnv) nodeIPs(ctx context.Context) ([]string, map[string]string) {
	GinkgoHelper()
	nodes, err := e.Kube.Nodes(ctx)
	Expect(err).NotTo(HaveOccurred())
	var ips []string
	byIP := map[string]string{}
	for i := range nodes {
		ip := nodeIP(&nodes[i])
		ips = append(ips, ip)
		byIP[ip] = nodes[i].Name
	}
	sort.Strings(ips)
	return ips, byIP
}

// decodeDial turns a client container's output into a DialResult; a client that could not
// run yields OK=false and Attempts=0, which probe.Fail() does not take for the expected
// failure.
func decodeDial(target, out string, err error) api.DialResult {
	r := api.DialResult{Proto: api.ProtoHTTP, Target: target}
	if err == nil {
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
			err = fmt.Errorf("client printed no JSON: %v (stdout %q)", jerr, out)
		}
	}
	if err != nil {
		r.OK, r.Attempts, r.Error = false, 0, err.Error()
	}
	return r
}

// dialFromOutside sends HTTP to target from a one-shot netprobe container on the cluster's
// Docker network: a machine next to the nodes that is not part of the cluster. On an
// existing cluster the suite has no such network; the host network of the first node is
// the nearest place outside the pod network, and outside() says which one was used.
func (e *clusterEnv) dialFromOutside(ctx context.Context, target string, opts ...probe.Opt) api.DialResult {
	if e.Cluster == nil {
		return e.Probe.Dial(ctx, probe.OnHost, e.outsideNode(), api.ProtoHTTP, target, opts...)
	}
	out, err := e.Cluster.RunClient(ctx, settings.NetprobeImage, probe.DialArgs(api.ProtoHTTP, target, opts...)...)
	return decodeDial(target, out, err)
}

// outside names where dialFromOutside's traffic starts, for failure messages.
func (e *clusterEnv) outside() string {
	if e.Cluster == nil {
		return "the host network of node " + e.outsideNode()
	}
	return "a container on " + e.Cluster.Network
}

func (e *clusterEnv) outsideNode() string {
	nodes := e.Probe.Nodes(probe.OnHost)
	if len(nodes) == 0 {
		return "(none)"
	}
	return nodes[0]
}

func serviceSpecs(e *clusterEnv) {
	Context("services", Label("area:services"), func() {
		BeforeEach(func() {
			if !e.Exp.PodNetwork {
				Skip("no pods run without a pod network (flannel-backend=" + e.Exp.Backend + ")")
			}
		})

		DescribeTable("reaches the NodePort Service on every node's IP from a pod on every node",
			func(ctx SpecContext, proto, portName string) {
				svc := &corev1.Service{}
				Expect(e.Kube.Resources().Get(ctx, probe.NodePortService, e.ns(), svc)).To(Succeed())
				var nodePort int32
				for _, p := range svc.Spec.Ports {
					if p.Name == portName {
						nodePort = p.NodePort
					}
				}
				// k3s keeps Kubernetes' default --service-node-port-range.
				Expect(nodePort).To(BeNumerically(">=", 30000), "port %s of %s should have a node port in 30000-32767", portName, probe.NodePortService)
				Expect(nodePort).To(BeNumerically("<=", 32767), "port %s of %s should have a node port in 30000-32767", portName, probe.NodePortService)
				ips, byIP := e.nodeIPs(ctx)
				for _, from := range e.Probe.Nodes(probe.InPod) {
					for _, ip := range ips {
						target := net.JoinHostPort(ip, strconv.Itoa(int(nodePort)))
						r := e.Probe.Dial(ctx, probe.InPod, from, proto, target)
						Expect(r).To(probe.Succeed(), "%s from the pod on %s to NodePort %d on node %s (%s)", proto, from, nodePort, byIP[ip], ip)
						Expect(r.Reply).To(HavePrefix(probe.PodDS+"-"), "the answer to %s via node %s should come from a netprobe pod", proto, byIP[ip])
					}
				}
			},
			Entry("TCP", api.ProtoTCP, "tcp-echo"),
			Entry("UDP", api.ProtoUDP, "udp-echo"),
			Entry("HTTP", api.ProtoHTTP, "http"),
		)
	})
}

func loadBalancerSpecs(e *clusterEnv) {
	Context("servicelb", Label("area:loadbalancer"), func() {
		BeforeEach(func() {
			if !e.Exp.PodNetwork {
				Skip("no pods run without a pod network (flannel-backend=" + e.Exp.Backend + ")")
			}
		})

		It("publishes a LoadBalancer Service on every node's IP through klipper-lb, reachable from the Docker network", func(ctx SpecContext) {
			if !e.Exp.ServiceLB {
				Skip("servicelb is disabled in profile " + e.Profile.Name + "; its absence is checked instead")
			}
			svc := e.lbService("netprobe-svclb", svclbPort, nil)
			created := e.createService(ctx, svc)
			ips, byIP := e.nodeIPs(ctx)

			By("waiting for servicelb to publish every node's IP")
			Eventually(ctx, func(ctx context.Context) ([]string, error) {
				return e.lbIngress(ctx, svc.Namespace, svc.Name)
			}).WithTimeout(servicelbConvergence).WithPolling(250*time.Millisecond).Should(Equal(ips),
				"servicelb should publish the IPs of all %d nodes for %s within %s", len(ips), svc.Name, servicelbConvergence)
			took := time.Since(created)

			// servicelb counts a node only once its svclb pod is Ready, so all of them are now.
			pods, err := e.Kube.Pods(ctx, "kube-system", svclbNameLabel+"="+svc.Name)
			Expect(err).NotTo(HaveOccurred())
			var onNodes []string
			for _, p := range pods {
				if p.Status.Phase == corev1.PodRunning && podReady(&p) {
					onNodes = append(onNodes, p.Spec.NodeName)
				}
			}
			Expect(onNodes).To(ConsistOf(mapValues(byIP)), "a ready svclb pod of %s should run on every node", svc.Name)

			for _, ip := range ips {
				target := net.JoinHostPort(ip, strconv.Itoa(svclbPort))
				r := e.dialFromOutside(ctx, target, probe.Count(3))
				Expect(r).To(probe.Succeed(), "HTTP from %s to LoadBalancer %s at node %s (%s)", e.outside(), svc.Name, byIP[ip], target)
				Expect(r.Reply).To(HavePrefix(probe.PodDS+"-"), "the answer via node %s should come from a netprobe pod", byIP[ip])
			}
			AddReportEntry("servicelb address time "+e.Profile.Name, fmt.Sprintf("all %d node IPs published %s after the Service was created", len(ips), took.Round(100*time.Millisecond)))
		})

		It("runs no klipper-lb for a LoadBalancer Service when servicelb is disabled", func(ctx SpecContext) {
			if e.Exp.ServiceLB {
				Skip("servicelb runs in profile " + e.Profile.Name)
			}
			svc := e.lbService("netprobe-nolb", svclbPort, nil)
			e.createService(ctx, svc)
			// Not a convergence: watch a bounded window and require that nothing appears.
			Consistently(ctx, func(g Gomega, ctx context.Context) []string {
				var found []string
				var dss appsv1.DaemonSetList
				g.Expect(e.Kube.Resources("kube-system").List(ctx, &dss, resources.WithLabelSelector(svclbNameLabel+"="+svc.Name))).To(Succeed())
				for _, ds := range dss.Items {
					found = append(found, "DaemonSet "+ds.Name)
				}
				pods, err := e.Kube.Pods(ctx, "kube-system", svclbNameLabel+"="+svc.Name)
				g.Expect(err).NotTo(HaveOccurred())
				for _, p := range pods {
					found = append(found, "pod "+p.Name+" on "+p.Spec.NodeName)
				}
				if !e.Exp.MetalLB {
					// With MetalLB a pool address is the expected outcome, not klipper-lb's.
					ips, err := e.lbIngress(ctx, svc.Namespace, svc.Name)
					g.Expect(err).NotTo(HaveOccurred())
					for _, ip := range ips {
						found = append(found, "ingress address "+ip)
					}
				}
				return found
			}).WithTimeout(servicelbAbsenceWindow).WithPolling(time.Second).Should(BeEmpty(),
				"with --disable servicelb, no svclb DaemonSet or pod may appear for %s, and it must stay without an address", svc.Name)
		})
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
