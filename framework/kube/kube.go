// Package kube is the suite's Kubernetes client: e2e-framework's klient for objects, waits
// and pod exec, plus typed clientset access where klient has no helper (logs).
package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient"
	"sigs.k8s.io/e2e-framework/klient/decoder"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
	"sigs.k8s.io/e2e-framework/klient/wait"
	"sigs.k8s.io/e2e-framework/klient/wait/conditions"
)

// Client talks to one cluster.
type Client struct {
	klient.Client
	Clientset kubernetes.Interface
}

// New builds a client from a kubeconfig file.
func New(kubeconfig string) (*Client, error) {
	kc, err := klient.NewWithKubeConfigFile(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return fromKlient(kc)
}

func fromKlient(kc klient.Client) (*Client, error) {
	cfg := rest.CopyConfig(kc.RESTConfig())
	// Probe fan-out runs many execs at once; the default 5 QPS would serialise them.
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{Client: kc, Clientset: cs}, nil
}

// Apply creates every object of a multi-document YAML manifest (already-existing objects are
// left as they are), in namespace ns when the object is namespaced and names none.
func (c *Client) Apply(ctx context.Context, manifest []byte, ns string) error {
	var opts []decoder.DecodeOption
	if ns != "" {
		opts = append(opts, decoder.MutateNamespace(ns))
	}
	return decoder.DecodeEach(ctx, bytes.NewReader(manifest), decoder.CreateIgnoreAlreadyExists(c.Resources()), opts...)
}

// ApplyClusterScoped is Apply for manifests that carry their own namespaces (MetalLB's).
func (c *Client) ApplyClusterScoped(ctx context.Context, manifest []byte) error {
	return c.Apply(ctx, manifest, "")
}

// CreateNamespace creates a namespace with labels, replacing nothing.
func (c *Client) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Resources().Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// DeleteNamespace deletes a namespace and waits until it is gone.
func (c *Client) DeleteNamespace(ctx context.Context, name string, timeout time.Duration) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Resources().Delete(ctx, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	return wait.For(conditions.New(c.Resources()).ResourceDeleted(ns), wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(time.Second))
}

// Nodes lists the cluster's nodes sorted by name.
func (c *Client) Nodes(ctx context.Context) ([]corev1.Node, error) {
	var list corev1.NodeList
	if err := c.Resources().List(ctx, &list); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items, nil
}

// NodeReady returns the Ready condition of a node, or nil.
func NodeReady(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// WaitNodesReady waits until want nodes exist and all are Ready; the error names the nodes
// that were not, and why.
func (c *Client) WaitNodesReady(ctx context.Context, want int, timeout time.Duration) error {
	var last string
	err := wait.For(func(ctx context.Context) (bool, error) {
		nodes, err := c.Nodes(ctx)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var notReady []string
		for i := range nodes {
			if cond := NodeReady(&nodes[i]); cond == nil || cond.Status != corev1.ConditionTrue {
				reason := "no Ready condition"
				if cond != nil {
					reason = cond.Reason + ": " + cond.Message
				}
				notReady = append(notReady, nodes[i].Name+" ("+reason+")")
			}
		}
		last = fmt.Sprintf("%d/%d nodes registered; not ready: %s", len(nodes), want, strings.Join(notReady, ", "))
		return len(nodes) == want && len(notReady) == 0, nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(time.Second))
	if err != nil {
		return fmt.Errorf("waiting %s for %d Ready nodes: %s", timeout, want, last)
	}
	return nil
}

// WaitDaemonSetReady waits until every scheduled pod of a DaemonSet is ready and updated.
func (c *Client) WaitDaemonSetReady(ctx context.Context, ns, name string, timeout time.Duration) error {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	var last string
	err := wait.For(func(ctx context.Context) (bool, error) {
		if err := c.Resources().Get(ctx, name, ns, ds); err != nil {
			last = err.Error()
			return false, nil
		}
		s := ds.Status
		last = fmt.Sprintf("desired %d, ready %d, updated %d", s.DesiredNumberScheduled, s.NumberReady, s.UpdatedNumberScheduled)
		return s.ObservedGeneration >= ds.Generation && s.DesiredNumberScheduled > 0 &&
			s.NumberReady == s.DesiredNumberScheduled && s.UpdatedNumberScheduled == s.DesiredNumberScheduled, nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(time.Second))
	if err != nil {
		return fmt.Errorf("waiting %s for DaemonSet %s/%s to be ready: %s", timeout, ns, name, last)
	}
	return nil
}

// WaitDeploymentAvailable waits for a Deployment's Available condition. A Deployment that
// does not exist yet is waited for too: k3s creates traefik's only when its HelmChart job
// has run, which on a loaded machine can be after the first look. The error says what was
// last seen.
func (c *Client) WaitDeploymentAvailable(ctx context.Context, ns, name string, timeout time.Duration) error {
	d := &appsv1.Deployment{}
	last := "not looked up yet"
	err := wait.For(func(ctx context.Context) (bool, error) {
		if err := c.Resources().Get(ctx, name, ns, d); err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("replicas %d, available %d, no Available condition", d.Status.Replicas, d.Status.AvailableReplicas)
		for _, cond := range d.Status.Conditions {
			if cond.Type == appsv1.DeploymentAvailable {
				last = fmt.Sprintf("replicas %d, available %d, Available=%s (%s)", d.Status.Replicas, d.Status.AvailableReplicas, cond.Status, cond.Reason)
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(time.Second))
	if err != nil {
		return fmt.Errorf("waiting %s for Deployment %s/%s to be available: %s", timeout, ns, name, last)
	}
	return nil
}

// Pods lists pods of a namespace matching a label selector.
func (c *Client) Pods(ctx context.Context, ns, selector string) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := c.Resources(ns).List(ctx, &list, resources.WithLabelSelector(selector)); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Spec.NodeName < list.Items[j].Spec.NodeName })
	return list.Items, nil
}

// Exec runs a command in a pod's container and returns its stdout and stderr.
//
// An exec whose connection to the kubelet could not be set up is tried again (up to
// execAttempts in all): k3s reaches an agent's kubelet through a tunnel from that agent,
// and a busy machine occasionally loses one handshake ("unable to upgrade connection:
// error dialing backend: EOF"). The command never started then, so running it again is
// safe, and such a failure says nothing about the pod network the checks measure.
func (c *Client) Exec(ctx context.Context, ns, pod, container string, cmd ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := retryUnstarted(ctx, execAttempts, execRetryPause, func() error {
		stdout.Reset()
		stderr.Reset()
		return c.Resources().ExecInPod(ctx, ns, pod, container, cmd, &stdout, &stderr)
	})
	return stdout.String(), stderr.String(), err
}

const (
	execAttempts   = 3
	execRetryPause = time.Second
)

// execNeverStarted tells whether an exec error means the stream to the container was never
// set up (the API server could not reach the kubelet), as opposed to a command that ran.
func execNeverStarted(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "unable to upgrade connection") || strings.Contains(msg, "error dialing backend")
}

// retryUnstarted calls run until it succeeds, fails in a way other than execNeverStarted,
// has been called attempts times, or ctx ends; it pauses between calls, longer each time.
func retryUnstarted(ctx context.Context, attempts int, pause time.Duration, run func() error) error {
	var err error
	for i := 1; ; i++ {
		if err = run(); !execNeverStarted(err) || i >= attempts {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i) * pause):
		}
	}
}

// Logs returns the last lines of a container's log.
func (c *Client) Logs(ctx context.Context, ns, pod, container string, tail int64) (string, error) {
	opts := &corev1.PodLogOptions{Container: container}
	if tail > 0 {
		opts.TailLines = &tail
	}
	rc, err := c.Clientset.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}
