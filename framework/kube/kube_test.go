package kube

import (
	"context"
	"errors"
	"testing"
	"time"
)

var (
	errTunnel = errors.New("unable to upgrade connection: error dialing backend: EOF")
	errRan    = errors.New("command terminated with exit code 1")
)

// calls returns a run function that answers with errs in turn (nil after the last) and
// a counter of its calls.
func calls(errs ...error) (func() error, *int) {
	n := 0
	return func() error {
		n++
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}, &n
}

func TestRetryUnstarted(t *testing.T) {
	for _, c := range []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   error
	}{
		{"succeeds at once", nil, 1, nil},
		{"tunnel lost twice, then the command runs", []error{errTunnel, errTunnel}, 3, nil},
		{"a command that ran and failed is not run again", []error{errRan}, 1, errRan},
		{"tunnel lost every time: gives up after the attempts", []error{errTunnel, errTunnel, errTunnel, errTunnel}, 3, errTunnel},
	} {
		t.Run(c.name, func(t *testing.T) {
			run, n := calls(c.errs...)
			err := retryUnstarted(context.Background(), 3, time.Millisecond, run)
			if !errors.Is(err, c.wantErr) {
				t.Errorf("error = %v, want %v", err, c.wantErr)
			}
			if *n != c.wantCalls {
				t.Errorf("%d calls, want %d", *n, c.wantCalls)
			}
		})
	}
}

func TestRetryUnstartedStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	run, n := calls(errTunnel, errTunnel)
	start := time.Now()
	err := retryUnstarted(ctx, 3, time.Hour, run)
	if !errors.Is(err, errTunnel) || *n != 1 {
		t.Errorf("after cancellation: error %v after %d calls, want the tunnel error after 1", err, *n)
	}
	if time.Since(start) > time.Second {
		t.Errorf("waited %s despite the cancelled context", time.Since(start))
	}
}

func TestExecNeverStarted(t *testing.T) {
	for msg, want := range map[string]bool{
		"unable to upgrade connection: error dialing backend: EOF":          true,
		"error dialing backend: dial tcp 127.0.0.1:10250: connect: refused": true,
		"command terminated with exit code 1":                               false,
		"unable to upgrade connection: container not found (\"netprobe\")":  true,
		"context deadline exceeded":                                         false,
	} {
		if got := execNeverStarted(errors.New(msg)); got != want {
			t.Errorf("execNeverStarted(%q) = %v, want %v", msg, got, want)
		}
	}
	if execNeverStarted(nil) {
		t.Error("execNeverStarted(nil) = true")
	}
}
