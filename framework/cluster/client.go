package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	cerrdefs "github.com/containerd/errdefs"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	dockerclient "github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// LabelClient marks the one-shot client containers of RunClient; its value is the cluster
// name. Clients carry LabelRun too, but not k3d's cluster label: k3d would take them for
// nodes of the cluster.
const LabelClient = "io.k3snet.client"

// RunClient runs image with args as a one-shot container attached to the cluster's Docker
// network — a machine next to the nodes, outside the cluster — and returns its stdout once
// it has exited. A non-zero exit status is an error carrying stderr.
//
// The container is created with Docker's auto-remove, so the engine deletes it when it
// exits even if this process dies first; it is also removed at once when ctx ends early.
// The command must bound its own run time (netprobe's client commands do).
func (c *Cluster) RunClient(ctx context.Context, image string, args ...string) (stdout string, err error) {
	if c.Network == "" {
		return "", fmt.Errorf("cluster %s has no Docker network to attach a client to", c.Name)
	}
	dc, err := docker()
	if err != nil {
		return "", err
	}
	defer dc.Close()

	name, created, err := c.createClient(ctx, dc, image, args, true)
	if err != nil {
		return "", err
	}
	removed := false
	defer func() {
		if removed {
			return
		}
		// Started or not, the container must not outlive the call; the engine may already be
		// removing it (auto-remove), which is fine.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		rerr := dc.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true})
		if rerr != nil && !cerrdefs.IsNotFound(rerr) && !strings.Contains(rerr.Error(), "already in progress") {
			err = errors.Join(err, fmt.Errorf("removing client container %s: %w", name, rerr))
		}
	}()

	// Attach and wait before starting: an auto-removed container that exits quickly would
	// otherwise take its output and exit status with it.
	hijack, err := dc.ContainerAttach(ctx, created.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return "", fmt.Errorf("attaching to client container %s: %w", name, err)
	}
	defer hijack.Close()
	waitC, waitErrC := dc.ContainerWait(ctx, created.ID, container.WaitConditionRemoved)
	var out, errOut bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		_, cerr := stdcopy.StdCopy(&out, &errOut, hijack.Reader)
		copied <- cerr
	}()
	if err := dc.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("starting client container %s: %w", name, err)
	}

	var status container.WaitResponse
	select {
	case status = <-waitC:
		removed = true
	case werr := <-waitErrC:
		return "", fmt.Errorf("waiting for client container %s: %w", name, werr)
	case <-ctx.Done():
		return "", fmt.Errorf("client container %s: %w", name, ctx.Err())
	}
	// The attach stream ends when the container exits; bound the wait anyway.
	select {
	case cerr := <-copied:
		if cerr != nil {
			return out.String(), fmt.Errorf("reading the output of client container %s: %w", name, cerr)
		}
	case <-time.After(10 * time.Second):
		return "", fmt.Errorf("client container %s exited but its output stream did not end", name)
	}
	if status.Error != nil && status.Error.Message != "" {
		return out.String(), fmt.Errorf("client container %s: %s", name, status.Error.Message)
	}
	if status.StatusCode != 0 {
		return out.String(), fmt.Errorf("client container %s (%s %s) exited with status %d: %s",
			name, image, strings.Join(args, " "), status.StatusCode, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// createClient creates (without starting) an auto-removed client container on the
// cluster's network, labelled so that it can be traced to the run and cluster.
func (c *Cluster) createClient(ctx context.Context, dc *dockerclient.Client, image string, args []string, attach bool) (string, container.CreateResponse, error) {
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return "", container.CreateResponse{}, err
	}
	name := c.Name + "-client-" + hex.EncodeToString(suffix)
	labels := map[string]string{LabelClient: c.Name, LabelRun: runIDOf(c.Name)}
	if c.Profile != nil {
		labels[LabelProfile] = c.Profile.Name
	}
	created, err := dc.ContainerCreate(ctx,
		&container.Config{Image: image, Cmd: args, Labels: labels, AttachStdout: attach, AttachStderr: attach},
		&container.HostConfig{AutoRemove: true, NetworkMode: container.NetworkMode(c.Network)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{c.Network: {}}},
		nil, name)
	if err != nil {
		return name, created, fmt.Errorf("creating client container %s on %s: %w", name, c.Network, err)
	}
	return name, created, nil
}

// runIDOf returns the run ID a cluster name ends with (Name: k3snet-<profile>-<runid>; run
// IDs contain no dash).
func runIDOf(clusterName string) string {
	return clusterName[strings.LastIndex(clusterName, "-")+1:]
}

// Client is a long-lived client container on the cluster's Docker network. Commands run in
// it through exec in well under a second, where a one-shot container needs seconds to start
// on a busy machine: measurements such as a load balancer's failover time use it.
type Client struct {
	Name string
	id   string
}

// StartClient starts image with args as a client container on the cluster's network and
// returns once it runs. args must end by themselves within a bounded time: the container
// is auto-removed when they do, so it cannot outlive a crashed run by more than that; Close
// removes it earlier.
func (c *Cluster) StartClient(ctx context.Context, image string, args ...string) (*Client, error) {
	if c.Network == "" {
		return nil, fmt.Errorf("cluster %s has no Docker network to attach a client to", c.Name)
	}
	dc, err := docker()
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	name, created, err := c.createClient(ctx, dc, image, args, false)
	if err != nil {
		return nil, err
	}
	cl := &Client{Name: name, id: created.ID}
	if err := dc.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return nil, errors.Join(fmt.Errorf("starting client container %s: %w", cl.Name, err), cl.Close(ctx))
	}
	return cl, nil
}

// Exec runs cmd (an absolute path and its arguments) in the client and returns its stdout;
// a non-zero exit status is an error carrying stderr.
func (cl *Client) Exec(ctx context.Context, cmd ...string) (string, error) {
	dc, err := docker()
	if err != nil {
		return "", err
	}
	defer dc.Close()
	ex, err := dc.ContainerExecCreate(ctx, cl.id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", fmt.Errorf("exec in client %s: %w", cl.Name, err)
	}
	hijack, err := dc.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("exec in client %s: %w", cl.Name, err)
	}
	defer hijack.Close()
	var out, errOut bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		_, cerr := stdcopy.StdCopy(&out, &errOut, hijack.Reader)
		copied <- cerr
	}()
	select {
	case cerr := <-copied:
		if cerr != nil {
			return "", fmt.Errorf("reading the output of exec in client %s: %w", cl.Name, cerr)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("exec in client %s: %w", cl.Name, ctx.Err())
	}
	st, err := dc.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return out.String(), fmt.Errorf("exec in client %s: %w", cl.Name, err)
	}
	if st.ExitCode != 0 {
		return out.String(), fmt.Errorf("%s in client %s exited with status %d: %s", strings.Join(cmd, " "), cl.Name, st.ExitCode, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// Close removes the client container; removing one that is already gone is not an error.
func (cl *Client) Close(ctx context.Context) error {
	dc, err := docker()
	if err != nil {
		return err
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err = dc.ContainerRemove(ctx, cl.id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "already in progress") {
		return fmt.Errorf("removing client container %s: %w", cl.Name, err)
	}
	return nil
}
