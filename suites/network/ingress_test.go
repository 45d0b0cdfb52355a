package network

import (
	"context"
	"net"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/k3snet/e2e/framework/probe"
)

const (
	// ingressHost is the host the suite's Ingress routes; it is never resolved, only sent
	// as the Host header to traefik's address.
	ingressHost = "probe.k3snet.test"
	// traefikRollout bounds traefik's installation: k3s's helm-controller first runs helm
	// install Jobs for the traefik-crd and traefik charts, and only then does the Deployment
	// exist and start. Minutes on a busy 2-core machine, not seconds.
	traefikRollout = 5 * time.Minute
	// ingressConvergence bounds the time from creating an Ingress to traefik routing it:
	// traefik watches Ingresses and rebuilds its routers within seconds.
	ingressConvergence = 60 * time.Second
	// traefikController is the controller name of the IngressClass traefik serves.
	traefikController = "traefik.io/ingress-controller"
)

var helmChartGVK = schema.GroupVersionKind{Group: "helm.cattle.io", Version: "v1", Kind: "HelmChart"}

// probeIngress routes ingressHost to the netprobe Service through traefik.
func (e *clusterEnv) probeIngress() *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	class := "traefik"
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "netprobe", Namespace: e.ns(), Labels: map[string]string{"app.kubernetes.io/part-of": "k3snet-e2e"}},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: ingressHost,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: probe.Service, Port: networkingv1.ServiceBackendPort{Name: "http"},
						}},
					}},
				}},
			}},
		},
	}
}

func ingressSpecs(e *clusterEnv) {
	Context("traefik", Label("area:ingress"), func() {
		requireTraefik := func() {
			if !e.Exp.Traefik {
				Skip("traefik is disabled in profile " + e.Profile.Name + "; its absence is checked instead")
			}
			if !e.Exp.PodNetwork {
				Skip("traefik cannot run without a pod network (flannel-backend=" + e.Exp.Backend + ")")
			}
		}

		It("deploys traefik from k3s's HelmChart, with the default IngressClass traefik", func(ctx SpecContext) {
			requireTraefik()
			hc := &unstructured.Unstructured{}
			hc.SetGroupVersionKind(helmChartGVK)
			Expect(e.Kube.Resources().Get(ctx, "traefik", "kube-system", hc)).To(Succeed(), "k3s should create HelmChart kube-system/traefik")
			Expect(e.Kube.WaitDeploymentAvailable(ctx, "kube-system", "traefik", traefikRollout)).To(Succeed())
			ic := &networkingv1.IngressClass{}
			Expect(e.Kube.Resources().Get(ctx, "traefik", "", ic)).To(Succeed(), "the traefik chart should create IngressClass traefik")
			Expect(ic.Spec.Controller).To(Equal(traefikController), "controller of IngressClass traefik")
			Expect(ic.Annotations).To(HaveKeyWithValue(networkingv1.AnnotationIsDefaultIngressClass, "true"), "traefik should be the default IngressClass")
		})

		It("routes an Ingress by host to the probe Service through traefik's LoadBalancer address, from the Docker network", func(ctx SpecContext) {
			requireTraefik()
			if !e.Exp.ServiceLB && !e.Exp.MetalLB {
				Skip("traefik's Service gets no LoadBalancer address without servicelb or MetalLB in profile " + e.Profile.Name)
			}
			Expect(e.Kube.WaitDeploymentAvailable(ctx, "kube-system", "traefik", traefikRollout)).To(Succeed())
			var addrs []string
			Eventually(ctx, func(ctx context.Context) ([]string, error) {
				var err error
				addrs, err = e.lbIngress(ctx, "kube-system", "traefik")
				return addrs, err
			}).WithTimeout(servicelbConvergence).ShouldNot(BeEmpty(), "Service kube-system/traefik should get a LoadBalancer address within %s", servicelbConvergence)

			ing := e.probeIngress()
			Expect(e.Kube.Resources().Create(ctx, ing)).To(Succeed(), "creating Ingress %s/%s", ing.Namespace, ing.Name)
			DeferCleanup(func(ctx context.Context) {
				err := e.Kube.Resources().Delete(ctx, ing)
				Expect(err == nil || apierrors.IsNotFound(err)).To(BeTrue(), "deleting Ingress %s: %v", ing.Name, err)
			})

			for _, addr := range addrs {
				target := net.JoinHostPort(addr, "80")
				Eventually(ctx, func(g Gomega, ctx context.Context) string {
					r := e.dialFromOutside(ctx, target, probe.Host(ingressHost))
					g.Expect(r).To(probe.Succeed(), "HTTP for host %s to traefik at %s", ingressHost, target)
					return r.Reply
				}).WithTimeout(ingressConvergence).Should(HavePrefix(probe.PodDS+"-"),
					"traefik at %s should route host %s to a netprobe pod within %s, from %s", target, ingressHost, ingressConvergence, e.outside())
				// traefik is now routing; a host no Ingress names must get traefik's own 404.
				r := e.dialFromOutside(ctx, target, probe.Host("other."+ingressHost))
				Expect(r).To(probe.Fail(), "traefik at %s must not route host other.%s", target, ingressHost)
				Expect(r.Status).To(Equal(404), "traefik at %s should answer an unrouted host with 404", target)
			}

			// publishedService: traefik copies its Service's address into the Ingress status.
			Eventually(ctx, func(g Gomega, ctx context.Context) []string {
				got := &networkingv1.Ingress{}
				g.Expect(e.Kube.Resources().Get(ctx, ing.Name, ing.Namespace, got)).To(Succeed())
				var ips []string
				for _, in := range got.Status.LoadBalancer.Ingress {
					ips = append(ips, in.IP)
				}
				sort.Strings(ips)
				return ips
			}).WithTimeout(ingressConvergence).Should(Equal(addrs), "the status of Ingress %s should carry traefik's LoadBalancer addresses", ing.Name)
		})

		It("leaves traefik out when it is disabled: no HelmChart, Deployment or IngressClass", func(ctx SpecContext) {
			if e.Exp.Traefik {
				Skip("traefik runs in profile " + e.Profile.Name)
			}
			hc := &unstructured.Unstructured{}
			hc.SetGroupVersionKind(helmChartGVK)
			err := e.Kube.Resources().Get(ctx, "traefik", "kube-system", hc)
			Expect(apierrors.IsNotFound(err) || meta.IsNoMatchError(err)).To(BeTrue(), "with --disable traefik there must be no HelmChart kube-system/traefik (got %v)", err)
			err = e.Kube.Resources().Get(ctx, "traefik", "kube-system", &appsv1.Deployment{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "with --disable traefik there must be no Deployment kube-system/traefik (got %v)", err)
			err = e.Kube.Resources().Get(ctx, "traefik", "", &networkingv1.IngressClass{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "with --disable traefik there must be no IngressClass traefik (got %v)", err)
		})
	})
}
