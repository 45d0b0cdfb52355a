package config

import (
	"strings"
	"testing"
)

func TestLoadCreateAttempts(t *testing.T) {
	t.Setenv("CREATE_ATTEMPTS", "")
	s, err := Load()
	if err != nil || s.CreateAttempts != 2 {
		t.Fatalf("default: got %d, %v; want 2 attempts", s.CreateAttempts, err)
	}
	for _, bad := range []string{"0", "6", "two", "-1"} {
		t.Setenv("CREATE_ATTEMPTS", bad)
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "CREATE_ATTEMPTS=") {
			t.Errorf("CREATE_ATTEMPTS=%s: got %v, want an error naming the variable", bad, err)
		}
	}
	t.Setenv("CREATE_ATTEMPTS", "1")
	if s, err := Load(); err != nil || s.CreateAttempts != 1 {
		t.Fatalf("CREATE_ATTEMPTS=1: got %d, %v", s.CreateAttempts, err)
	}
}

func TestLoadRejectsBadKeepAndRunID(t *testing.T) {
	t.Setenv("KEEP_CLUSTERS", "sometimes")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "KEEP_CLUSTERS") {
		t.Errorf("KEEP_CLUSTERS=sometimes: got %v", err)
	}
	t.Setenv("KEEP_CLUSTERS", "")
	t.Setenv("RUN_ID", "Not_OK")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "RUN_ID") {
		t.Errorf("RUN_ID=Not_OK: got %v", err)
	}
}
