// Package config reads the run's settings from the environment, the one place knobs enter
// the suite. The Makefile exports them; .lab/images.env (written by the lab or by
// scripts/setup.sh) fills what the environment leaves unset, so `go test ./suites/...` run by
// hand sees the same images as `make e2e`.
package config

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// KeepPolicy says when clusters survive the run, for debugging.
type KeepPolicy string

const (
	KeepNever     KeepPolicy = "never"
	KeepOnFailure KeepPolicy = "on-failure"
	KeepAlways    KeepPolicy = "always"
)

// Settings is everything the environment decides about a run.
type Settings struct {
	RunID           string     // RUN_ID, default random; names every cluster of the run
	K3sImage        string     // K3S_IMAGE: node image
	K3sVersion      string     // K3S_VERSION: the k3s version that image runs
	ImageSource     string     // IMAGE_SOURCE: "lab" or "official" (reported, never branched on)
	NetprobeImage   string     // NETPROBE_IMAGE
	MetalLBManifest string     // METALLB_MANIFEST: file path or URL
	MetalLBImages   []string   // METALLB_IMAGES: imported into clusters when present locally
	Profiles        string     // PROFILES: comma/space separated, "" = all
	Keep            KeepPolicy // KEEP_CLUSTERS
	Artifacts       string     // ARTIFACTS
	Kubeconfig      string     // KUBECONFIG: only for existing-cluster mode
	// Existing (EXISTING_CLUSTER=1) runs the checks against the cluster in KUBECONFIG
	// instead of creating clusters: checks that need the cluster's lifecycle are skipped.
	Existing bool
	// CreateAttempts (CREATE_ATTEMPTS, default 2) is how often a profile's cluster creation
	// is tried. A cluster that does not come up is an infrastructure failure, not a network
	// finding; a retry is reported in the profile's timings ("create-failed").
	CreateAttempts int
}

// DefaultK3sVersion is the version used with official images when nothing else is set.
const DefaultK3sVersion = "v1.31.1+k3s1"

// Load reads the environment (falling back to .lab/images.env found from the working
// directory upwards) and validates what it can without touching Docker.
func Load() (Settings, error) {
	fileEnv := map[string]string{}
	if path := findUp(filepath.Join(".lab", "images.env")); path != "" {
		var err error
		if fileEnv, err = readEnvFile(path); err != nil {
			return Settings{}, err
		}
	}
	get := func(key, def string) string {
		if v, ok := os.LookupEnv(key); ok && v != "" {
			return v
		}
		if v := fileEnv[key]; v != "" {
			return v
		}
		return def
	}
	s := Settings{
		RunID:           get("RUN_ID", ""),
		K3sVersion:      get("K3S_VERSION", DefaultK3sVersion),
		ImageSource:     get("IMAGE_SOURCE", "official"),
		NetprobeImage:   get("NETPROBE_IMAGE", "k3snet.local/netprobe:dev"),
		MetalLBManifest: get("METALLB_MANIFEST", "https://raw.githubusercontent.com/metallb/metallb/v0.15.2/config/manifests/metallb-native.yaml"),
		MetalLBImages:   strings.Fields(get("METALLB_IMAGES", "")),
		Profiles:        get("PROFILES", ""),
		Keep:            KeepPolicy(get("KEEP_CLUSTERS", string(KeepNever))),
		Artifacts:       get("ARTIFACTS", "_artifacts"),
		Kubeconfig:      os.Getenv("KUBECONFIG"),
		Existing:        os.Getenv("EXISTING_CLUSTER") == "1",
	}
	if s.Existing && s.Kubeconfig == "" {
		return s, fmt.Errorf("EXISTING_CLUSTER=1 needs KUBECONFIG to name the cluster's kubeconfig")
	}
	s.K3sImage = get("K3S_IMAGE", "rancher/k3s:"+strings.ReplaceAll(s.K3sVersion, "+", "-"))
	if v := get("K3D_IMAGE_TOOLS", ""); v != "" {
		// k3d reads this variable itself; make the file's value visible to it.
		os.Setenv("K3D_IMAGE_TOOLS", v)
	}
	attempts := get("CREATE_ATTEMPTS", "2")
	n, err := strconv.Atoi(attempts)
	if err != nil || n < 1 || n > 5 {
		return s, fmt.Errorf("CREATE_ATTEMPTS=%q: want a number from 1 to 5", attempts)
	}
	s.CreateAttempts = n
	if s.RunID == "" {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return s, err
		}
		s.RunID = hex.EncodeToString(b)
	}
	switch s.Keep {
	case KeepNever, KeepOnFailure, KeepAlways:
	default:
		return s, fmt.Errorf("KEEP_CLUSTERS=%q: want never, on-failure or always", s.Keep)
	}
	if !validRunID(s.RunID) {
		return s, fmt.Errorf("RUN_ID=%q: want 1-6 characters of [a-z0-9]", s.RunID)
	}
	if abs, err := filepath.Abs(s.Artifacts); err == nil {
		s.Artifacts = abs
	}
	return s, nil
}

func validRunID(id string) bool {
	if len(id) == 0 || len(id) > 6 {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func findUp(rel string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE, got %q", path, n, line)
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return out, sc.Err()
}
