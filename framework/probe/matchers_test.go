package probe

import (
	"strings"
	"testing"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
)

func TestSucceedMatcher(t *testing.T) {
	ok := api.DialResult{OK: true, Proto: "udp", Attempts: 1, Successes: 1}
	lost := api.DialResult{Proto: "udp", Target: "10.42.1.5:8082", Attempts: 1, Datagrams: 4,
		Error: "no UDP reply within 2s (4 datagrams sent)"}
	m := Succeed()
	if got, err := m.Match(ok); err != nil || !got {
		t.Errorf("Succeed on an ok result: %v %v", got, err)
	}
	if got, _ := m.Match(lost); got {
		t.Errorf("Succeed matched a failed dial")
	}
	// The summary keeps the first line after the spec's description: it must carry the
	// probe's error, not only the start of a struct dump.
	first := strings.SplitN(m.FailureMessage(lost), "\n", 2)[0]
	if want := "it reported: no UDP reply within 2s (4 datagrams sent)"; !strings.Contains(first, want) {
		t.Errorf("first line %q lacks %q", first, want)
	}
	if msg := m.FailureMessage(api.PingResult{}); !strings.Contains(msg, "no error text") {
		t.Errorf("a result without error text: %q", msg)
	}
	if _, err := m.Match("not a result"); err == nil {
		t.Errorf("Succeed accepted a string")
	}
}

func TestFailMatcherNeedsTheProbeToRun(t *testing.T) {
	m := Fail()
	if got, _ := m.Match(api.DialResult{Attempts: 1, Error: "connection refused"}); !got {
		t.Errorf("a dial that ran and failed should match Fail")
	}
	if got, _ := m.Match(api.DialResult{Error: "exec failed"}); got {
		t.Errorf("a dial that never ran must not count as the expected failure")
	}
	if got, _ := m.Match(api.DialResult{OK: true, Attempts: 1}); got {
		t.Errorf("a successful dial matched Fail")
	}
	for _, c := range []struct {
		r    api.DialResult
		want string
	}{
		{api.DialResult{OK: true, Attempts: 1}, "expected the probe to run and fail; it succeeded\n"},
		{api.DialResult{Error: "exec failed"}, "expected the probe to run and fail; it did not run: exec failed\n"},
	} {
		if msg := m.FailureMessage(c.r); !strings.HasPrefix(msg, c.want) {
			t.Errorf("Fail's message %q, want it to start with %q", msg, c.want)
		}
	}
}
