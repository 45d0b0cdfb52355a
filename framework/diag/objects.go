package diag

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

const none = "<none>"

// now is the clock the AGE columns are computed against; tests fix it.
var now = time.Now

// clusterSteps lists the objects that explain traffic (nodes, pods, Services, their
// EndpointSlices, events) and reads the logs of kube-system's and the probe's pods.
func (c *collector) clusterSteps(ctx context.Context, cs kubernetes.Interface) {
	listing := func(name string, fn func(ctx context.Context) (table string, obj any, err error)) {
		c.spawn(ctx, func(ctx context.Context) {
			c.slot(ctx, name, func(ctx context.Context) error {
				table, obj, err := fn(ctx)
				if err != nil {
					return err
				}
				y, err := yaml.Marshal(obj)
				if err != nil {
					return fmt.Errorf("encoding %s: %w", name, err)
				}
				if err := c.write(name+".txt", []byte(table)); err != nil {
					return err
				}
				return c.write(name+".yaml", y)
			})
		})
	}
	listing("nodes", func(ctx context.Context) (string, any, error) {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", nil, err
		}
		l.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"}
		sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
		for i := range l.Items {
			l.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}
			l.Items[i].ManagedFields = nil
		}
		return nodesTable(l.Items, now()), l, nil
	})
	listing("pods", func(ctx context.Context) (string, any, error) {
		l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", nil, err
		}
		l.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}
		sort.Slice(l.Items, func(i, j int) bool { return nsNameLess(l.Items[i].ObjectMeta, l.Items[j].ObjectMeta) })
		for i := range l.Items {
			l.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
			l.Items[i].ManagedFields = nil
		}
		return podsTable(l.Items, now()), l, nil
	})
	listing("services", func(ctx context.Context) (string, any, error) {
		l, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", nil, err
		}
		l.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceList"}
		sort.Slice(l.Items, func(i, j int) bool { return nsNameLess(l.Items[i].ObjectMeta, l.Items[j].ObjectMeta) })
		for i := range l.Items {
			l.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
			l.Items[i].ManagedFields = nil
		}
		return servicesTable(l.Items, now()), l, nil
	})
	listing("endpointslices", func(ctx context.Context) (string, any, error) {
		l, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", nil, err
		}
		l.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSliceList"}
		sort.Slice(l.Items, func(i, j int) bool { return nsNameLess(l.Items[i].ObjectMeta, l.Items[j].ObjectMeta) })
		for i := range l.Items {
			l.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
			l.Items[i].ManagedFields = nil
		}
		return endpointSlicesTable(l.Items, now()), l, nil
	})
	listing("events", func(ctx context.Context) (string, any, error) {
		l, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", nil, err
		}
		l.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "EventList"}
		// Oldest first: the story of the failure reads top to bottom.
		sort.SliceStable(l.Items, func(i, j int) bool { return eventTime(l.Items[i]).Before(eventTime(l.Items[j])) })
		for i := range l.Items {
			l.Items[i].TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Event"}
			l.Items[i].ManagedFields = nil
		}
		return eventsTable(l.Items, now()), l, nil
	})

	namespaces := []string{metav1.NamespaceSystem}
	if ns := c.src.ProbeNamespace; ns != "" && ns != metav1.NamespaceSystem {
		namespaces = append(namespaces, ns)
	}
	for _, ns := range namespaces {
		c.spawn(ctx, func(outer context.Context) {
			c.slot(outer, "pods of "+ns, func(ctx context.Context) error {
				l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				// The log steps outlive this listing step: they get the collection's context,
				// not this step's.
				for _, p := range l.Items {
					c.podLogSteps(outer, cs, p)
				}
				return nil
			})
		})
	}
}

// podLogSteps reads every container's log of a pod and, after a restart, the log of the
// previous instance too: a crash-looping container's reason is in the one that died.
func (c *collector) podLogSteps(ctx context.Context, cs kubernetes.Interface, p corev1.Pod) {
	restarts := map[string]int32{}
	for _, st := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		restarts[st.Name] = st.RestartCount
	}
	var names []string
	for _, ct := range p.Spec.InitContainers {
		names = append(names, ct.Name)
	}
	for _, ct := range p.Spec.Containers {
		names = append(names, ct.Name)
	}
	base := "logs/" + safeName(p.Namespace) + "/" + safeName(p.Name) + "_"
	for _, ct := range names {
		kinds := []bool{false}
		if restarts[ct] > 0 {
			kinds = append(kinds, true)
		}
		for _, previous := range kinds {
			rel, label := base+safeName(ct)+".log", ""
			if previous {
				rel, label = base+safeName(ct)+".previous.log", " (previous)"
			}
			name := fmt.Sprintf("log of %s/%s container %s%s", p.Namespace, p.Name, ct, label)
			c.spawn(ctx, func(ctx context.Context) {
				c.slot(ctx, name, func(ctx context.Context) error {
					tail := int64(c.src.PodLogTail)
					b, err := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{
						Container: ct, TailLines: &tail, Previous: previous,
					}).DoRaw(ctx)
					if err != nil {
						return err
					}
					return c.write(rel, b)
				})
			})
		}
	}
}

func nodeNames(ctx context.Context, cs kubernetes.Interface) ([]string, error) {
	l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range l.Items {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out, nil
}

// table renders rows kubectl-style: left-aligned columns separated by three spaces.
func table(header []string, rows [][]string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		for i := range r {
			if r[i] == "" {
				r[i] = none
			}
			// A tab or newline inside a value (an event message) would break the columns.
			r[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(r[i])
		}
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
	return b.String()
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func nodesTable(items []corev1.Node, now time.Time) string {
	var rows [][]string
	for _, n := range items {
		status := "Unknown"
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				switch cond.Status {
				case corev1.ConditionTrue:
					status = "Ready"
				case corev1.ConditionFalse:
					status = "NotReady"
				}
			}
		}
		if n.Spec.Unschedulable {
			status += ",SchedulingDisabled"
		}
		var roles []string
		for k := range n.Labels {
			if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
				roles = append(roles, r)
			}
		}
		sort.Strings(roles)
		var internal, external []string
		for _, a := range n.Status.Addresses {
			switch a.Type {
			case corev1.NodeInternalIP:
				internal = append(internal, a.Address)
			case corev1.NodeExternalIP:
				external = append(external, a.Address)
			}
		}
		podCIDRs := n.Spec.PodCIDRs
		if len(podCIDRs) == 0 && n.Spec.PodCIDR != "" {
			podCIDRs = []string{n.Spec.PodCIDR}
		}
		ni := n.Status.NodeInfo
		rows = append(rows, []string{n.Name, status, strings.Join(roles, ","), age(n.CreationTimestamp, now), ni.KubeletVersion,
			strings.Join(internal, ","), strings.Join(external, ","), strings.Join(podCIDRs, ","),
			ni.OSImage, ni.KernelVersion, ni.ContainerRuntimeVersion})
	}
	return table([]string{"NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "POD-CIDRS", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"}, rows)
}

func podsTable(items []corev1.Pod, now time.Time) string {
	var rows [][]string
	for _, p := range items {
		ready, restarts := 0, int32(0)
		for _, st := range p.Status.ContainerStatuses {
			if st.Ready {
				ready++
			}
			restarts += st.RestartCount
		}
		rows = append(rows, []string{p.Namespace, p.Name, fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), podStatus(p),
			strconv.Itoa(int(restarts)), age(p.CreationTimestamp, now), p.Status.PodIP, p.Spec.NodeName})
	}
	return table([]string{"NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"}, rows)
}

// podStatus approximates kubectl's STATUS column: the reason a container is waiting or
// died says more than the pod phase.
func podStatus(p corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "Terminating"
	}
	for _, st := range p.Status.InitContainerStatuses {
		switch {
		case st.State.Terminated != nil && st.State.Terminated.ExitCode != 0:
			return "Init:" + orExit(st.State.Terminated.Reason, st.State.Terminated.ExitCode)
		case st.State.Waiting != nil && st.State.Waiting.Reason != "" && st.State.Waiting.Reason != "PodInitializing":
			return "Init:" + st.State.Waiting.Reason
		}
	}
	for _, st := range p.Status.ContainerStatuses {
		switch {
		case st.State.Waiting != nil && st.State.Waiting.Reason != "":
			return st.State.Waiting.Reason
		case st.State.Terminated != nil:
			return orExit(st.State.Terminated.Reason, st.State.Terminated.ExitCode)
		}
	}
	if p.Status.Reason != "" {
		return p.Status.Reason
	}
	return string(p.Status.Phase)
}

func orExit(reason string, code int32) string {
	if reason != "" {
		return reason
	}
	return fmt.Sprintf("ExitCode:%d", code)
}

func servicesTable(items []corev1.Service, now time.Time) string {
	var rows [][]string
	for _, s := range items {
		var external []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			external = append(external, in.IP+in.Hostname)
		}
		external = append(external, s.Spec.ExternalIPs...)
		ext := strings.Join(external, ",")
		if ext == "" && s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			ext = "<pending>"
		}
		var ports []string
		for _, p := range s.Spec.Ports {
			v := strconv.Itoa(int(p.Port))
			if p.NodePort != 0 {
				v += ":" + strconv.Itoa(int(p.NodePort))
			}
			ports = append(ports, v+"/"+string(p.Protocol))
		}
		clusterIP := strings.Join(s.Spec.ClusterIPs, ",")
		if clusterIP == "" {
			clusterIP = s.Spec.ClusterIP
		}
		rows = append(rows, []string{s.Namespace, s.Name, string(s.Spec.Type), clusterIP, ext, strings.Join(ports, ","),
			age(s.CreationTimestamp, now), selector(s.Spec.Selector)})
	}
	return table([]string{"NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"}, rows)
}

func selector(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func endpointSlicesTable(items []discoveryv1.EndpointSlice, now time.Time) string {
	var rows [][]string
	for _, s := range items {
		var ports []string
		for _, p := range s.Ports {
			v := "<unset>"
			if p.Port != nil {
				v = strconv.Itoa(int(*p.Port))
			}
			if p.Protocol != nil {
				v += "/" + string(*p.Protocol)
			}
			ports = append(ports, v)
		}
		// Every address with its node and readiness: the table is read to see which
		// backends a Service really had, so no "+ N more" shortening.
		var eps []string
		for _, ep := range s.Endpoints {
			suffix := ""
			if ep.NodeName != nil && *ep.NodeName != "" {
				suffix = "@" + *ep.NodeName
			}
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				suffix += "(not-ready)"
			}
			for _, a := range ep.Addresses {
				eps = append(eps, a+suffix)
			}
		}
		rows = append(rows, []string{s.Namespace, s.Name, s.Labels[discoveryv1.LabelServiceName], string(s.AddressType),
			strings.Join(ports, ","), strings.Join(eps, ","), age(s.CreationTimestamp, now)})
	}
	return table([]string{"NAMESPACE", "NAME", "SERVICE", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"}, rows)
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func eventsTable(items []corev1.Event, now time.Time) string {
	var rows [][]string
	for _, e := range items {
		count := e.Count
		if e.Series != nil && e.Series.Count > count {
			count = e.Series.Count
		}
		obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
		rows = append(rows, []string{age(metav1.NewTime(eventTime(e)), now), e.Namespace, e.Type, e.Reason, obj,
			strconv.Itoa(int(count)), e.Message})
	}
	return table([]string{"LAST-SEEN", "NAMESPACE", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"}, rows)
}

func nsNameLess(a, b metav1.ObjectMeta) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// safeName keeps a path component inside the bundle whatever a name holds.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, s)
	if s == "" || s == "." || s == ".." {
		return "_" + s
	}
	return s
}
