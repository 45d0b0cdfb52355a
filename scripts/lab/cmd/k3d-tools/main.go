// Command k3d-tools stands in for the k3d tools image (ghcr.io/k3d-io/k3d-tools) in the
// offline lab, where that image cannot be pulled. k3d v5 starts a container of that image
// for every cluster it creates and talks to it only through these entry points:
//
//	k3d-tools noop                          the container's command: stay up until stopped
//	./k3d-tools save-image -d FILE IMAGE…   (docker exec, working dir /app) write the images,
//	                                        read from the Docker engine, as one
//	                                        `docker save` archive into FILE
//	rm -f FILE…                             (docker exec) remove the archives again
//
// save-image talks to the Docker Engine API over the socket k3d mounts into the container
// (DOCKER_HOST if set, else /var/run/docker.sock) with plain net/http, so the image needs no
// docker CLI. The image is FROM scratch, so `rm` is this same binary under another name
// (the program looks at the name it was started as).
//
// Not implemented: the `sh -c "getent ahostsv4 …"` k3d runs in this container only on
// Docker Desktop and Colima, to find the host's address; the lab runs neither.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// version names the k3d release whose tools image this program replaces.
const version = "5.9.0-k3snet"

func main() {
	if filepath.Base(os.Args[0]) == "rm" {
		os.Exit(runRm(os.Args[1:]))
	}
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "noop":
		noop()
	case "save-image":
		if err := saveImage(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "k3d-tools save-image:", err)
			os.Exit(1)
		}
	case "rm":
		os.Exit(runRm(os.Args[2:]))
	case "version", "--version":
		fmt.Println("k3d-tools", version)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: k3d-tools noop | save-image -d FILE IMAGE... | rm [-f] FILE... | version")
	os.Exit(2)
}

// noop keeps the container running until it is stopped. As PID 1 it must handle SIGTERM
// itself (the kernel ignores unhandled signals for PID 1), and it reaps orphans of the
// processes k3d executes in the container.
func noop() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}

// saveImage implements `save-image -d FILE IMAGE...`. The archive is written next to FILE
// under a temporary name and renamed at the end, so a node never imports a partial file.
func saveImage(args []string) error {
	var dest string
	var images []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-d" || a == "--destination" || a == "--dest":
			if i+1 >= len(args) {
				return fmt.Errorf("%s needs a file name", a)
			}
			i++
			dest = args[i]
		case strings.HasPrefix(a, "-d="), strings.HasPrefix(a, "--destination="), strings.HasPrefix(a, "--dest="):
			dest = a[strings.Index(a, "=")+1:]
		case strings.HasPrefix(a, "-"):
			return fmt.Errorf("unknown flag %s", a)
		default:
			images = append(images, a)
		}
	}
	if dest == "" {
		return errors.New("no destination (-d FILE)")
	}
	if len(images) == 0 {
		return errors.New("no image given")
	}

	client, base, err := dockerClient()
	if err != nil {
		return err
	}
	q := url.Values{}
	for _, img := range images {
		q.Add("names", img)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/images/get?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("docker engine: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("docker engine answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}

	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	n, err := io.Copy(tmp, resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return err
	}
	fmt.Printf("saved %d image(s) to %s (%d bytes)\n", len(images), dest, n)
	return nil
}

// dockerClient returns an HTTP client bound to the engine's unix socket and the URL prefix
// to use with it. Only unix sockets are supported: k3d mounts the socket into the container.
func dockerClient() (*http.Client, string, error) {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			return nil, "", fmt.Errorf("DOCKER_HOST %q: only unix:// sockets are supported", h)
		}
		sock = strings.TrimPrefix(h, "unix://")
	}
	if _, err := os.Stat(sock); err != nil {
		return nil, "", fmt.Errorf("docker socket: %w", err)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
	// The host part is ignored by the dialer; unversioned paths use the engine's own API
	// version, which keeps this working with old and new engines alike.
	return &http.Client{Transport: tr}, "http://docker", nil
}

// runRm is a minimal rm: flags -f, -r, -R (in any combination); directories need -r.
//
// k3d v5.9.0 passes all archive names joined by spaces as ONE argument
// (`rm -f "a.tar b.tar"`). With -f, an argument that does not exist but contains spaces is
// therefore also tried as a list of names, so the archives really go away.
func runRm(args []string) int {
	force, recursive := false, false
	var paths []string
	flags := true
	for _, a := range args {
		if flags && a == "--" {
			flags = false
			continue
		}
		if flags && len(a) > 1 && a[0] == '-' {
			for _, c := range a[1:] {
				switch c {
				case 'f':
					force = true
				case 'r', 'R':
					recursive = true
				default:
					fmt.Fprintf(os.Stderr, "rm: unknown flag -%c\n", c)
					return 2
				}
			}
			continue
		}
		paths = append(paths, a)
	}
	if len(paths) == 0 && !force {
		fmt.Fprintln(os.Stderr, "rm: missing operand")
		return 2
	}
	status := 0
	remove := func(p string) error {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if !recursive {
				return fmt.Errorf("%s: is a directory", p)
			}
			return os.RemoveAll(p)
		}
		return os.Remove(p)
	}
	for _, p := range paths {
		err := remove(p)
		if errors.Is(err, os.ErrNotExist) && force && strings.Contains(p, " ") {
			err = nil
			for _, q := range strings.Fields(p) {
				if e := remove(q); e != nil && !errors.Is(e, os.ErrNotExist) {
					err = e
				}
			}
		}
		if err == nil || (force && errors.Is(err, os.ErrNotExist)) {
			continue
		}
		fmt.Fprintln(os.Stderr, "rm:", err)
		status = 1
	}
	return status
}
