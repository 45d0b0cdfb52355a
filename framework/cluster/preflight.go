package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/docker/docker/api/types/container"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
)

// WireGuardSupport asks the kernel that k3d's node containers would share (the Docker
// engine's) whether it can create a WireGuard link, by running `netprobe wgcheck` in a
// short-lived privileged container. It answers before any cluster exists, so a profile
// that needs WireGuard is skipped instead of booting nodes that crash-loop.
func WireGuardSupport(ctx context.Context, probeImage string) (api.WGCheckResult, error) {
	var r api.WGCheckResult
	out, err := runOnce(ctx, probeImage, true, "", []string{"wgcheck"})
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return r, fmt.Errorf("netprobe wgcheck printed %q: %w", out, err)
	}
	return r, nil
}

// runOnce runs a container to completion and returns its stdout. It is removed afterwards
// whatever happened.
func runOnce(ctx context.Context, image string, privileged bool, network string, cmd []string) (string, error) {
	dc, err := docker()
	if err != nil {
		return "", err
	}
	defer dc.Close()
	hc := &container.HostConfig{Privileged: privileged}
	if network != "" {
		hc.NetworkMode = container.NetworkMode(network)
	} else {
		hc.NetworkMode = "none"
	}
	created, err := dc.ContainerCreate(ctx, &container.Config{Image: image, Cmd: cmd, Labels: map[string]string{LabelRun: "preflight"}}, hc, nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("creating a %s container: %w", image, err)
	}
	defer func() {
		if err := dc.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true}); err != nil {
			fmt.Fprintf(os.Stderr, "removing the %s preflight container %s: %v\n", image, created.ID[:12], err)
		}
	}()
	if err := dc.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("starting a %s container: %w", image, err)
	}
	waitC, errC := dc.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		return "", err
	}
	return containerStdout(ctx, created.ID)
}
