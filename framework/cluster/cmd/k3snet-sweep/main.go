// Command k3snet-sweep removes every cluster (containers, volumes, network) that a k3snet
// run left behind, or only those of one run: k3snet-sweep [RUN_ID].
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/k3snet/e2e/framework/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	run := ""
	if len(os.Args) > 1 {
		run = os.Args[1]
	}
	swept, err := cluster.Sweep(ctx, run)
	for _, n := range swept {
		fmt.Println("removed", n)
	}
	if len(swept) == 0 {
		fmt.Println("nothing to remove")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
