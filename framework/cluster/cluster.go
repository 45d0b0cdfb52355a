// Package cluster turns a profile into a running k3s cluster with the k3d Go library (never
// the k3d CLI), and makes sure every cluster a run creates is removed again.
package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	k3dclient "github.com/k3d-io/k3d/v5/pkg/client"
	k3dconfig "github.com/k3d-io/k3d/v5/pkg/config"
	"github.com/k3d-io/k3d/v5/pkg/config/types"
	conf "github.com/k3d-io/k3d/v5/pkg/config/v1alpha5"
	l "github.com/k3d-io/k3d/v5/pkg/logger"
	"github.com/k3d-io/k3d/v5/pkg/runtimes"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
	"github.com/sirupsen/logrus"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/k3snet/e2e/framework/profile"
)

// Labels put on every node container; Sweep finds a run's leftovers by them.
const (
	LabelRun     = "io.k3snet.run"
	LabelProfile = "io.k3snet.profile"
	NamePrefix   = "k3snet-"
)

// DefaultToolsImage is the k3d tools image matching the k3d library version in go.mod. As a
// library k3d does not know its own version and would ask for the "latest" tag.
const DefaultToolsImage = "ghcr.io/k3d-io/k3d-tools:5.9.0"

// Options are the run-wide inputs of Create.
type Options struct {
	RunID        string
	Image        string    // node image
	ImportImages []string  // local images imported into every node after start
	Log          io.Writer // k3d's log goes here
	// Timeout bounds k3d's cluster run (default 5m): nodes started and their ready log lines
	// seen. ImportTimeout bounds the image import after it (default 3m).
	Timeout       time.Duration
	ImportTimeout time.Duration
	// PersistentState keeps each node's /var/lib/rancher/k3s in a named volume of its own,
	// so a node container can be replaced by one of another image (an upgrade) and come
	// back with its datastore, certificates and identity.
	PersistentState bool
}

// Node is one k3s node of a cluster.
type Node struct {
	Name      string // Kubernetes node name (= container hostname)
	Container string
	Role      string // "server" or "agent"
	IP        string // address on the cluster's Docker network
}

// Cluster is a running k3d cluster made for one profile.
type Cluster struct {
	Name       string
	Profile    *profile.Profile
	Network    string
	Subnet     *net.IPNet
	Kubeconfig string // private file (0600) in a private directory
	APIPort    int
	Nodes      []Node
	Timings    []Timing

	k3d *k3d.Cluster
	dir string
}

// Timing is the wall time of one phase of a cluster's life.
type Timing struct {
	Phase    string
	Duration time.Duration
}

// Name is the cluster name for a profile in a run: unique per run, short enough for k3d.
func Name(profileName, runID string) string { return NamePrefix + profileName + "-" + runID }

func init() {
	// k3d logs through a global logrus logger at info level; keep it quiet unless asked.
	l.Log().SetLevel(logrus.WarnLevel)
	if os.Getenv("K3D_IMAGE_TOOLS") == "" {
		os.Setenv("K3D_IMAGE_TOOLS", DefaultToolsImage)
	}
}

// Create boots the profile's cluster and returns once k3d saw every node start. On any
// error the partial cluster is deleted before returning.
func Create(ctx context.Context, p *profile.Profile, o Options) (c *Cluster, err error) {
	if o.Log != nil {
		l.Log().SetOutput(o.Log)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.ImportTimeout == 0 {
		o.ImportTimeout = 3 * time.Minute
	}
	name := Name(p.Name, o.RunID)
	if err := k3dclient.CheckName(name); err != nil {
		return nil, fmt.Errorf("cluster name %q: %w", name, err)
	}
	image := o.Image
	if p.K3s.Image != "" {
		image = p.K3s.Image
	}
	rt := runtimes.SelectedRuntime
	if _, err := rt.Info(); err != nil {
		return nil, fmt.Errorf("docker engine not reachable (run `make docker`): %w", err)
	}
	if _, err := k3dclient.ClusterGet(ctx, rt, &k3d.Cluster{Name: name}); err == nil {
		return nil, fmt.Errorf("cluster %s already exists; remove it with `make clean-clusters`", name)
	}

	c = &Cluster{Name: name, Profile: p, Network: "k3d-" + name}
	if c.dir, err = os.MkdirTemp("", name+"-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			// Never leave a half-made cluster behind, even when ctx was cancelled (Ctrl-C).
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			err = &CreateError{Err: err, Logs: nodeLogs(dctx, name, 200)}
			if derr := c.Delete(dctx); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up after the failed create: %w", derr))
			}
			c = nil
		}
	}()

	if c.Subnet, err = pickSubnet(ctx, p, name); err != nil {
		return c, err
	}
	if c.APIPort, err = freePort(); err != nil {
		return c, err
	}

	simple := conf.SimpleConfig{
		TypeMeta:   types.TypeMeta{Kind: "Simple", APIVersion: conf.ApiVersion},
		ObjectMeta: types.ObjectMeta{Name: name},
		Servers:    p.Servers,
		Agents:     p.AgentCount(),
		Image:      image,
		Subnet:     c.Subnet.String(),
		// The API listens on loopback only: nothing outside this machine reaches test clusters.
		ExposeAPI: conf.SimpleExposureOpts{Host: "127.0.0.1", HostIP: "127.0.0.1", HostPort: strconv.Itoa(c.APIPort)},
		Options: conf.SimpleConfigOptions{
			K3dOptions: conf.SimpleConfigOptionsK3d{
				Wait:    true,
				Timeout: o.Timeout,
				// The serverlb (nginx) image is not needed: the API is published on server-0.
				DisableLoadbalancer: true,
				// Keep k3d's image volume: without it, k3d's tools-node setup looks the
				// cluster up before its nodes exist and fails.
				DisableImageVolume: false,
			},
			KubeconfigOptions: conf.SimpleConfigOptionsKubeconfig{UpdateDefaultKubeconfig: false, SwitchCurrentContext: false},
			Runtime: conf.SimpleConfigOptionsRuntime{Labels: []conf.LabelWithNodeFilters{
				{Label: LabelRun + "=" + o.RunID, NodeFilters: []string{"all"}},
				{Label: LabelProfile + "=" + p.Name, NodeFilters: []string{"all"}},
			}},
		},
	}
	if o.PersistentState {
		// Besides its data directory, a k3s node keeps its node password in /etc/rancher/node;
		// the server refuses a node that comes back with another one ("Node password
		// rejected"), so both outlive the container.
		for _, role := range []struct {
			name  string
			count int
		}{{"server", p.Servers}, {"agent", p.AgentCount()}} {
			for i := 0; i < role.count; i++ {
				filter := []string{fmt.Sprintf("%s:%d", role.name, i)}
				simple.Volumes = append(simple.Volumes,
					conf.VolumeWithNodeFilters{Volume: fmt.Sprintf("%s-%s-%d-state:/var/lib/rancher/k3s", name, role.name, i), NodeFilters: filter},
					conf.VolumeWithNodeFilters{Volume: fmt.Sprintf("%s-%s-%d-node:/etc/rancher/node", name, role.name, i), NodeFilters: filter})
			}
		}
	}
	for _, a := range p.ServerArgs() {
		simple.Options.K3sOptions.ExtraArgs = append(simple.Options.K3sOptions.ExtraArgs, conf.K3sArgWithNodeFilters{Arg: a, NodeFilters: []string{"server:*"}})
	}
	for _, a := range p.AgentArgs() {
		simple.Options.K3sOptions.ExtraArgs = append(simple.Options.K3sOptions.ExtraArgs, conf.K3sArgWithNodeFilters{Arg: a, NodeFilters: []string{"agent:*"}})
	}

	start := time.Now()
	if err = k3dconfig.ProcessSimpleConfig(&simple); err != nil {
		return c, fmt.Errorf("k3d config: %w", err)
	}
	cc, err := k3dconfig.TransformSimpleToClusterConfig(ctx, rt, simple, "")
	if err != nil {
		return c, fmt.Errorf("k3d config: %w", err)
	}
	if cc, err = k3dconfig.ProcessClusterConfig(*cc); err != nil {
		return c, fmt.Errorf("k3d config: %w", err)
	}
	if err = k3dconfig.ValidateClusterConfig(ctx, rt, *cc); err != nil {
		return c, fmt.Errorf("k3d config: %w", err)
	}
	c.k3d = &cc.Cluster
	// k3d applies Timeout to each of its own stages; the extra minute lets its error, which
	// names the stage, win over ours.
	if err = bounded(ctx, o.Timeout+time.Minute, "k3d cluster run "+name, func(ctx context.Context) error {
		return k3dclient.ClusterRun(ctx, rt, cc)
	}); err != nil {
		return c, fmt.Errorf("k3d cluster run %s: %w", name, err)
	}
	c.Timings = append(c.Timings, Timing{"create", time.Since(start)})

	if err = c.refresh(ctx); err != nil {
		return c, err
	}
	if err = c.writeKubeconfig(ctx); err != nil {
		return c, err
	}
	if len(o.ImportImages) > 0 {
		start = time.Now()
		if err = bounded(ctx, o.ImportTimeout, "importing images into "+name, func(ctx context.Context) error {
			return c.Import(ctx, o.ImportImages...)
		}); err != nil {
			return c, err
		}
		c.Timings = append(c.Timings, Timing{"image-import", time.Since(start)})
	}
	return c, nil
}

// bounded runs f with a deadline and returns when f does or when the deadline passes,
// whichever comes first. Not every k3d call honours its context everywhere (a log-follow
// wait notices cancellation only on its next line; k3d's streaming image import, no longer
// used, could block for good), so a stall must not outlive the deadline. Giving up on such
// a call is safe because every caller deletes the cluster on error, which ends whatever
// exec or log stream it is stuck on.
func bounded(ctx context.Context, d time.Duration, what string, f func(context.Context) error) error {
	bctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(bctx) }()
	select {
	case err := <-done:
		return err
	case <-bctx.Done():
		if ctx.Err() != nil {
			return ctx.Err() // the caller gave up (Ctrl-C, spec timeout), not us
		}
		return fmt.Errorf("%s: no result within %s: %w", what, d, bctx.Err())
	}
}

// Import copies local Docker images into every node's containerd: one `docker save` into a
// file of the run, copied into each node and imported there by `ctr image import <file>`.
// k3d's own direct import streams a single save into all nodes' stdin at once through
// pipes nobody closes; here it stalled for good in some cluster creations (3 minutes and no
// result, nodes healthy). Files and plain execs have no such shared state.
func (c *Cluster) Import(ctx context.Context, images ...string) error {
	rt := runtimes.SelectedRuntime
	tarball, err := c.saveImages(ctx, images)
	if err != nil {
		return err
	}
	defer os.Remove(tarball)
	inNode := "/tmp/" + filepath.Base(tarball)

	var wg sync.WaitGroup
	errs := make([]error, len(c.k3d.Nodes))
	for i, n := range c.k3d.Nodes {
		if n.Role != k3d.ServerRole && n.Role != k3d.AgentRole {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.CopyToNode(ctx, tarball, "/tmp", n); err != nil {
				errs[i] = fmt.Errorf("copying the image archive into %s: %w", n.Name, err)
				return
			}
			out, err := rt.ExecInNodeGetLogs(ctx, n, []string{"ctr", "image", "import", "--all-platforms", inNode})
			if err != nil {
				errs[i] = fmt.Errorf("ctr image import in %s: %w (output: %s)", n.Name, err, readAll(out))
				return
			}
			// The archive only costs space in the node from here on.
			_ = rt.ExecInNode(ctx, n, []string{"rm", "-f", inNode})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("importing %v into %s: %w", images, c.Name, err)
	}
	return nil
}

// saveImages writes `docker save` of images to a file in the cluster's private directory.
func (c *Cluster) saveImages(ctx context.Context, images []string) (string, error) {
	stream, err := runtimes.SelectedRuntime.GetImageStream(ctx, images)
	if err != nil {
		return "", fmt.Errorf("docker save %v: %w", images, err)
	}
	defer stream.Close()
	f, err := os.CreateTemp(c.dir, "k3snet-images-*.tar")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, stream); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("docker save %v: %w", images, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func readAll(r *bufio.Reader) string {
	if r == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	return strings.TrimSpace(string(b))
}

func (c *Cluster) refresh(ctx context.Context) error {
	kc, err := k3dclient.ClusterGet(ctx, runtimes.SelectedRuntime, &k3d.Cluster{Name: c.Name})
	if err != nil {
		return fmt.Errorf("reading cluster %s back: %w", c.Name, err)
	}
	c.k3d = kc
	c.Nodes = c.Nodes[:0]
	for _, n := range kc.Nodes {
		if n.Role != k3d.ServerRole && n.Role != k3d.AgentRole {
			continue
		}
		node := Node{Name: n.Name, Container: n.Name, Role: string(n.Role), IP: n.IP.IP.String()}
		c.Nodes = append(c.Nodes, node)
	}
	sort.Slice(c.Nodes, func(i, j int) bool { return c.Nodes[i].Name < c.Nodes[j].Name })
	return nil
}

func (c *Cluster) writeKubeconfig(ctx context.Context) error {
	cfg, err := k3dclient.KubeconfigGet(ctx, runtimes.SelectedRuntime, c.k3d)
	if err != nil {
		return fmt.Errorf("kubeconfig of %s: %w", c.Name, err)
	}
	path := filepath.Join(c.dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	c.Kubeconfig = path
	return nil
}

// Node returns the node with the given Kubernetes name.
func (c *Cluster) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// StopNode stops a node's container (a node failure, as seen by the rest of the cluster).
func (c *Cluster) StopNode(ctx context.Context, name string) error {
	n, err := k3dclient.NodeGet(ctx, runtimes.SelectedRuntime, &k3d.Node{Name: name})
	if err != nil {
		return err
	}
	return runtimes.SelectedRuntime.StopNode(ctx, n)
}

// StartNode starts a stopped node's container again.
func (c *Cluster) StartNode(ctx context.Context, name string) error {
	n, err := k3dclient.NodeGet(ctx, runtimes.SelectedRuntime, &k3d.Node{Name: name})
	if err != nil {
		return err
	}
	return runtimes.SelectedRuntime.StartNode(ctx, n)
}

// ReplaceNode swaps a node's container for a new one running image, keeping everything else
// (name, network address, volumes, k3s arguments): the way a k3s node is upgraded in place.
// The cluster must have been created with PersistentState, or the node loses its state.
//
// These are the steps of k3d's NodeReplace, which cannot be used as is: it starts the new
// container without the environment information k3d's DNS fix needs (the host gateway) and
// then fails with "Cannot enable DNS fix, as Host Gateway IP is missing!".
func (c *Cluster) ReplaceNode(ctx context.Context, name, image string) error {
	rt := runtimes.SelectedRuntime
	old, err := k3dclient.NodeGet(ctx, rt, &k3d.Node{Name: name})
	if err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	repl, err := k3dclient.CopyNode(ctx, old, k3dclient.CopyNodeOpts{})
	if err != nil {
		return fmt.Errorf("copying node %s: %w", name, err)
	}
	repl.Image = image
	gw, err := k3dclient.GetHostIP(ctx, rt, c.k3d)
	if err != nil {
		return fmt.Errorf("host gateway of cluster %s: %w", c.Name, err)
	}
	start := func(n *k3d.Node) error {
		return k3dclient.NodeStart(ctx, rt, n, &k3d.NodeStartOpts{
			Wait: true, NodeHooks: n.HookActions, EnvironmentInfo: &k3d.EnvironmentInfo{HostGateway: gw},
		})
	}

	// The old container steps aside under another name, so that the new one takes the
	// node's name, and comes back if the new one cannot start.
	aside := name + "-replaced"
	if err := rt.RenameNode(ctx, old, aside); err != nil {
		return fmt.Errorf("renaming node %s: %w", name, err)
	}
	old.Name = aside
	putBack := func() error {
		if err := rt.RenameNode(ctx, old, name); err != nil {
			return fmt.Errorf("renaming %s back to %s: %w", aside, name, err)
		}
		old.Name = name
		return nil
	}
	if err := k3dclient.NodeCreate(ctx, rt, repl, k3d.NodeCreateOpts{}); err != nil {
		return errors.Join(fmt.Errorf("creating the new container of node %s with image %s: %w", name, image, err), putBack())
	}
	if err := rt.StopNode(ctx, old); err != nil {
		return fmt.Errorf("stopping the old container of node %s: %w", name, err)
	}
	if err := start(repl); err != nil {
		errs := []error{fmt.Errorf("starting node %s with image %s: %w", name, image, err)}
		if err := k3dclient.NodeDelete(ctx, rt, repl, k3d.NodeDeleteOpts{SkipLBUpdate: true}); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := putBack(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		old.State.Running = false
		if err := start(old); err != nil {
			errs = append(errs, fmt.Errorf("restarting the old container of node %s: %w", name, err))
		}
		return errors.Join(errs...)
	}
	if err := k3dclient.NodeDelete(ctx, rt, old, k3d.NodeDeleteOpts{SkipLBUpdate: true}); err != nil {
		return fmt.Errorf("removing the old container of node %s: %w", name, err)
	}
	return c.refresh(ctx)
}

// Delete removes the cluster: containers (with their volumes), network, kubeconfig.
// Deleting a cluster that is already gone is not an error.
func (c *Cluster) Delete(ctx context.Context) error {
	start := time.Now()
	var errs []error
	if _, err := k3dclient.ClusterGet(ctx, runtimes.SelectedRuntime, &k3d.Cluster{Name: c.Name}); err == nil {
		if err := k3dclient.ClusterDelete(ctx, runtimes.SelectedRuntime, &k3d.Cluster{Name: c.Name}, k3d.ClusterDeleteOpts{SkipRegistryCheck: true}); err != nil {
			errs = append(errs, fmt.Errorf("deleting cluster %s: %w", c.Name, err))
		}
	}
	// k3d may stop half-way when the create was interrupted: remove what carries the name.
	if err := removeLeftovers(ctx, c.Name); err != nil {
		errs = append(errs, err)
	}
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	c.Timings = append(c.Timings, Timing{"delete", time.Since(start)})
	return errors.Join(errs...)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port on 127.0.0.1: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
