package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBoundedReturnsResult(t *testing.T) {
	want := errors.New("boom")
	if err := bounded(context.Background(), time.Second, "x", func(context.Context) error { return want }); !errors.Is(err, want) {
		t.Fatalf("bounded returned %v, want %v", err, want)
	}
}

// A call that ignores its context (as k3d's stalled image import does) must not hold the
// caller past the deadline.
func TestBoundedGivesUpOnACallThatIgnoresItsContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	err := bounded(context.Background(), 50*time.Millisecond, "importing images into c1", func(context.Context) error {
		<-release
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "importing images into c1: no result within 50ms") {
		t.Fatalf("bounded returned %v, want a deadline error naming the step", err)
	}
}

func TestBoundedReportsTheCallersCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	release := make(chan struct{})
	defer close(release)
	err := bounded(ctx, time.Minute, "x", func(context.Context) error { <-release; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("bounded returned %v, want context.Canceled", err)
	}
}
