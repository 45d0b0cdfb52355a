// Command pause is the lab's pod sandbox program (the image k3s's containerd starts as the
// first container of every pod). It holds the pod's namespaces open by doing nothing.
//
// As PID 1 of the sandbox it has two duties besides waiting: it exits 0 on SIGINT or SIGTERM
// (the runtime stops sandboxes with SIGTERM and must not need SIGKILL), and it reaps every
// child that gets re-parented to it, so that pods sharing their PID namespace
// (shareProcessNamespace) never collect zombies.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is what -v prints; it names the upstream release the image stands in for.
const version = "3.6-k3snet"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-v", "--version", "version":
			fmt.Println("pause", version)
			return
		}
	}
	if os.Getpid() != 1 {
		// Not fatal: useful when run by hand, but reaping only matters as PID 1.
		fmt.Fprintln(os.Stderr, "pause: warning: not running as PID 1")
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: shutting down, got signal %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking; one SIGCHLD may stand for several.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
