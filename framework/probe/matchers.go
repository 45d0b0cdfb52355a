package probe

import (
	"fmt"
	"reflect"

	"github.com/onsi/gomega/types"

	"github.com/k3snet/e2e/fixtures/netprobe/api"
)

// Succeed matches a probe result whose probe reported success. Its failure message shows the
// whole result (target, attempts, error), so the spec's own message only needs to say which
// nodes were involved.
func Succeed() types.GomegaMatcher { return &okMatcher{want: true} }

// Fail matches a probe result whose probe ran and reported failure: for expected failures
// (blocked traffic), asserted once, never retried. A probe that could not run at all (exec
// error) does not count as the expected failure.
func Fail() types.GomegaMatcher { return &okMatcher{want: false} }

type okMatcher struct{ want bool }

func resultOK(actual any) (ok bool, ran bool, err error) {
	switch r := actual.(type) {
	case api.DialResult:
		return r.OK, r.Attempts > 0, nil
	case api.PingResult:
		return r.OK, r.Sent > 0 || r.MsgTooLong, nil
	case api.DNSResult:
		return r.OK, r.Count > 0, nil
	case api.LinksResult:
		return r.OK, true, nil
	case api.ExecResult:
		return r.OK, r.ExitCode >= 0, nil
	case api.PerfResult:
		return r.OK, true, nil
	case api.WGCheckResult:
		return r.OK, true, nil
	case api.ResolvConfResult:
		return r.OK, true, nil
	}
	return false, false, fmt.Errorf("probe matcher: unsupported type %T", actual)
}

func (m *okMatcher) Match(actual any) (bool, error) {
	ok, ran, err := resultOK(actual)
	if err != nil {
		return false, err
	}
	if !m.want && !ran {
		return false, nil
	}
	return ok == m.want, nil
}

// FailureMessage puts a one-line verdict with the probe's own error on the line right after
// the spec's description (the line the run summary keeps) and the whole result below it.
func (m *okMatcher) FailureMessage(actual any) string {
	verdict := "expected the probe to succeed; it reported: " + probeError(actual)
	if !m.want {
		verdict = "expected the probe to run and fail; it succeeded"
		if _, ran, _ := resultOK(actual); !ran {
			verdict = "expected the probe to run and fail; it did not run: " + probeError(actual)
		}
	}
	return fmt.Sprintf("%s\nwhole result: %+v", verdict, actual)
}

// probeError is the Error field every netprobe result carries, or a word when it is empty.
func probeError(actual any) string {
	v := reflect.ValueOf(actual)
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Error"); f.IsValid() && f.Kind() == reflect.String && f.String() != "" {
			return f.String()
		}
	}
	return "no error text"
}

func (m *okMatcher) NegatedFailureMessage(actual any) string {
	return fmt.Sprintf("expected the probe not to report ok=%v, got %+v", m.want, actual)
}
