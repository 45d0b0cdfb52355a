package cluster

import (
	"errors"
	"testing"
)

func TestCreateErrorLogTails(t *testing.T) {
	e := &CreateError{Err: errors.New("x"), Logs: map[string]string{
		"server-0": "a\nb\nc\n",
		"agent-0":  "one\ntwo\n",
	}}
	want := "\n===== agent-0 (log tail)\ntwo\n\n===== server-0 (log tail)\nc\n"
	if got := e.LogTails(1); got != want {
		t.Errorf("LogTails(1) = %q, want %q", got, want)
	}
	want = "\n===== agent-0 (log tail)\none\ntwo\n\n===== server-0 (log tail)\na\nb\nc\n"
	if got := e.LogTails(0); got != want {
		t.Errorf("LogTails(0) = %q, want %q", got, want)
	}
}
