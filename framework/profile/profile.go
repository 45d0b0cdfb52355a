// Package profile turns a profile — a small YAML file describing one k3s cluster shape — into
// validated, fully defaulted data and into the expectations the suite checks against the
// cluster k3s builds from it.
//
// A profile is data, not code: the same specs run against every profile and read what to
// expect from Expect(). Defaults are k3s's own, so a profile that sets nothing but its name
// describes a stock k3s cluster, and the flags handed to k3s always spell every network
// setting out, so what is checked is exactly what was asked.
package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Flannel backends k3s has known. The first four are current; ipsec and wireguard are kept so a
// profile can assert that a k3s version refuses them.
const (
	BackendVXLAN           = "vxlan"
	BackendHostGW          = "host-gw"
	BackendWireGuardNative = "wireguard-native"
	BackendNone            = "none"
	BackendIPSec           = "ipsec"
	BackendWireGuard       = "wireguard" // the legacy, userspace-configured one
)

// Backends lists every backend a profile may name, current ones first.
var Backends = []string{BackendVXLAN, BackendHostGW, BackendWireGuardNative, BackendNone, BackendIPSec, BackendWireGuard}

// Components k3s can be told not to deploy with --disable. This is k3s's own list
// (DisableItems in pkg/cli/cmds/stage.go); k3s itself accepts any word silently, so a typo
// would otherwise leave the component running while the suite expects it gone.
const (
	ComponentCoreDNS       = "coredns"
	ComponentServiceLB     = "servicelb"
	ComponentTraefik       = "traefik"
	ComponentLocalStorage  = "local-storage"
	ComponentMetricsServer = "metrics-server"
	ComponentRuntimes      = "runtimes"
)

// Components lists every value accepted in `disable`.
var Components = []string{ComponentCoreDNS, ComponentServiceLB, ComponentTraefik, ComponentLocalStorage, ComponentMetricsServer, ComponentRuntimes}

// k3s defaults (pkg/cli/cmds/server.go and pkg/cli/server/server.go). The cluster DNS address
// is not a constant in k3s: it is the service CIDR's network address + 10.
const (
	DefaultBackend          = BackendVXLAN
	DefaultClusterCIDR      = "10.42.0.0/16"
	DefaultServiceCIDR      = "10.43.0.0/16"
	DefaultClusterDNS       = "10.43.0.10"
	DefaultClusterDomain    = "cluster.local"
	DefaultNodeCIDRMaskSize = 24 // kube-controller-manager's --node-cidr-mask-size for IPv4
	DefaultServers          = 1
	DefaultAgents           = 2
)

// Profile is one cluster shape, as written in fixtures/profiles/*.yaml.
type Profile struct {
	// Name identifies the profile in PROFILES, labels and cluster names.
	Name string `json:"name"`
	// Description says what the profile is for; free text.
	Description string `json:"description,omitempty"`
	// Servers is the number of k3s servers; absent (0 in a profile built in code) means 1.
	// An explicit `servers: 0` in YAML is an error, not the default.
	Servers int `json:"servers,omitempty"`
	// Agents is the number of k3s agents; nil means 2 (a pointer so that 0 can be written).
	Agents *int `json:"agents,omitempty"`
	// K3s pins the node image or the k3s version; both are normally chosen at run time.
	K3s K3s `json:"k3s"`
	// Network holds the k3s network settings.
	Network Network `json:"network"`
	// Disable lists packaged components passed to k3s as --disable.
	Disable []string `json:"disable,omitempty"`
	// ExtraServerArgs are further k3s server flags, each written as "--name=value".
	ExtraServerArgs []string `json:"serverArgs,omitempty"`
	// ExtraAgentArgs are further k3s agent flags, each written as "--name=value".
	ExtraAgentArgs []string `json:"agentArgs,omitempty"`
	// Addons are installed by the suite after the cluster is up.
	Addons Addons `json:"addons"`
	// Outcome is what the profile expects k3s to do with it (YAML key `expect`).
	Outcome Outcome `json:"expect"`
	// CrossNode says whether the profile needs pods on different nodes; nil means true.
	CrossNode *bool `json:"crossNode,omitempty"`

	// Source is the file the profile came from; it prefixes every error about the profile.
	Source string `json:"-"`

	// serversSet records that the YAML wrote servers, so that `servers: 0` is refused rather
	// than read as "use the default".
	serversSet bool
	// dnsDefaulted records that ClusterDNS was derived rather than written, so that an error
	// about it can say where the value came from.
	dnsDefaulted bool
}

// K3s pins what runs on the nodes.
type K3s struct {
	// Image is an explicit node image; empty means the one chosen at run time.
	Image string `json:"image,omitempty"`
	// Version is a k3s version such as v1.31.1+k3s1; empty means the one chosen at run time.
	Version string `json:"version,omitempty"`
}

// Network mirrors k3s's network flags.
type Network struct {
	FlannelBackend       string `json:"flannelBackend,omitempty"`
	ClusterCIDR          string `json:"clusterCIDR,omitempty"`
	ServiceCIDR          string `json:"serviceCIDR,omitempty"`
	ClusterDNS           string `json:"clusterDNS,omitempty"`
	ClusterDomain        string `json:"clusterDomain,omitempty"`
	NodeCIDRMaskSize     int    `json:"nodeCIDRMaskSize,omitempty"`
	DisableNetworkPolicy bool   `json:"disableNetworkPolicy,omitempty"`
	// DockerSubnet fixes the Docker network of the nodes; empty lets Docker choose.
	DockerSubnet string `json:"dockerSubnet,omitempty"`
}

// Addons the suite installs on top of k3s.
type Addons struct {
	MetalLB bool `json:"metallb,omitempty"`
}

// Outcome is what the profile expects from k3s.
type Outcome struct {
	// StartRefused says k3s must refuse to start with this profile (a removed backend).
	StartRefused bool `json:"startRefused,omitempty"`
}

// ServerCount is the number of servers, defaulted.
func (p *Profile) ServerCount() int {
	if p.Servers == 0 && !p.serversSet {
		return DefaultServers
	}
	return p.Servers
}

// AgentCount is the number of agents, defaulted.
func (p *Profile) AgentCount() int { return intOr(p.Agents, DefaultAgents) }

// Nodes is servers + agents.
func (p *Profile) Nodes() int { return p.ServerCount() + p.AgentCount() }

// NeedsCrossNode reports whether the profile's specs need pods on two different nodes.
func (p *Profile) NeedsCrossNode() bool { return p.CrossNode == nil || *p.CrossNode }

// Labels are the Ginkgo labels every spec run against this profile carries.
func (p *Profile) Labels() []string {
	return []string{"profile:" + p.Name, "backend:" + p.Network.FlannelBackend}
}

// String is a one-line summary for logs and reports.
func (p *Profile) String() string {
	s := fmt.Sprintf("%s (%s, %d server(s), %d agent(s)", p.Name, p.Network.FlannelBackend, p.ServerCount(), p.AgentCount())
	if len(p.Disable) > 0 {
		s += ", disable " + strings.Join(p.Disable, ",")
	}
	if p.Addons.MetalLB {
		s += ", metallb"
	}
	if p.Outcome.StartRefused {
		s += ", start refused"
	}
	return s + ")"
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// Parse decodes one profile strictly, fills k3s's defaults and validates it. source names the
// profile in errors (normally its file path).
func Parse(data []byte, source string) (*Profile, error) {
	if source == "" {
		source = "profile"
	}
	// First pass: find unknown keys with their full path, which encoding/json cannot report
	// (it names neither the parent nor the file, and it matches keys case-insensitively).
	raw, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", source, err)
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	switch tree.(type) {
	case nil, map[string]any:
	default:
		return nil, fmt.Errorf("%s: a profile is a YAML mapping (name: ..., network: ...), not a %s", source, jsonKind(tree))
	}
	if errs := unknownFields(tree, reflect.TypeFor[Profile](), "", source); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Second pass: the real decode, which coerces scalars into string fields the way
	// Kubernetes YAML does and reports type mismatches.
	p := &Profile{}
	if err := yaml.UnmarshalStrict(data, p); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			return nil, fmt.Errorf("%s: %s: got a %s, want %s", source, te.Field, te.Value, typeWord(te.Type))
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	p.Source = source
	if m, ok := tree.(map[string]any); ok && m["servers"] != nil {
		p.serversSet = true
	}
	p.SetDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// SetDefaults writes k3s's defaults into every field left empty, so that the profile and the
// flags derived from it are explicit. Parse calls it; a profile built in code needs it before
// Validate.
func (p *Profile) SetDefaults() {
	if p.Servers == 0 && !p.serversSet {
		p.Servers = DefaultServers
	}
	if p.Agents == nil {
		p.Agents = new(DefaultAgents)
	}
	if p.CrossNode == nil {
		p.CrossNode = new(true)
	}
	n := &p.Network
	if n.FlannelBackend == "" {
		n.FlannelBackend = DefaultBackend
	}
	if n.ClusterCIDR == "" {
		n.ClusterCIDR = DefaultClusterCIDR
	}
	if n.ServiceCIDR == "" {
		n.ServiceCIDR = DefaultServiceCIDR
	}
	if n.ClusterDNS == "" {
		// k3s: "ClusterDNS address to be the first IPv4 ServiceCIDR network + 10"
		// (pkg/cli/server/server.go, utilsnet.GetIndexedIP(svcCIDR, 10)).
		if svc, err := parsePrefix(n.ServiceCIDR); err == nil {
			if ip, ok := indexedAddr(svc, 10); ok {
				n.ClusterDNS = ip.String()
				p.dnsDefaulted = true
			}
		}
	}
	if n.ClusterDomain == "" {
		n.ClusterDomain = DefaultClusterDomain
	}
	if n.NodeCIDRMaskSize == 0 {
		n.NodeCIDRMaskSize = DefaultNodeCIDRMaskSize
	}
}

// Load reads and parses one profile file.
func Load(file string) (*Profile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(data, file)
}

// LoadDir parses every *.yaml and *.yml file in dir (not recursively), sorted by name.
func LoadDir(dir string) ([]*Profile, error) {
	return loadFrom(os.DirFS(dir), func(name string) string { return filepath.Join(dir, name) })
}

// LoadFS parses every *.yaml and *.yml file at the root of fsys, sorted by name; the embedded
// set is fixtures/profiles.FS. Errors name files by their path inside fsys.
func LoadFS(fsys fs.FS) ([]*Profile, error) {
	return loadFrom(fsys, func(name string) string { return name })
}

func loadFrom(fsys fs.FS, source func(string) string) ([]*Profile, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var (
		all  []*Profile
		errs []error
	)
	for _, e := range entries {
		ext := path.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		src := source(e.Name())
		data, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p, err := Parse(data, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// PROFILES names profiles; a file named differently from its profile would make the
		// name a user types disagree with the file they edit.
		if base := strings.TrimSuffix(e.Name(), ext); base != p.Name {
			errs = append(errs, fmt.Errorf("%s: name %q differs from the file name; call the file %s%s or the profile %q", src, p.Name, p.Name, ext, base))
			continue
		}
		all = append(all, p)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	for i := 1; i < len(all); i++ {
		if all[i].Name == all[i-1].Name {
			errs = append(errs, fmt.Errorf("%s: name %q is already used by %s", all[i].Source, all[i].Name, all[i-1].Source))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(all) == 0 {
		return nil, errors.New("no profiles found (want *.yaml files)")
	}
	return all, nil
}

// Select picks profiles by name from all. names is the PROFILES environment variable: names
// separated by commas and/or spaces; empty selects all. Order follows names, duplicates are
// dropped, and an unknown name is an error listing the known ones.
func Select(all []*Profile, names string) ([]*Profile, error) {
	fields := strings.FieldsFunc(names, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return slices.Clone(all), nil
	}
	byName := make(map[string]*Profile, len(all))
	known := make([]string, 0, len(all))
	for _, p := range all {
		byName[p.Name] = p
		known = append(known, p.Name)
	}
	sort.Strings(known)
	var (
		out     []*Profile
		unknown []string
		seen    = map[string]bool{}
	)
	for _, n := range fields {
		if seen[n] {
			continue
		}
		seen[n] = true
		p, ok := byName[n]
		if !ok {
			unknown = append(unknown, fmt.Sprintf("%q", n))
			continue
		}
		out = append(out, p)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("PROFILES names unknown profile(s) %s; known profiles: %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return out, nil
}

// unknownFields walks a decoded YAML tree against the JSON names of t and reports every key
// that t does not have, with its dotted path and the keys allowed at that level.
func unknownFields(v any, t reflect.Type, prefix, source string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // a type mismatch, reported by the decoder
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var errs []error
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				where := "the top level"
				if prefix != "" {
					where = strings.TrimSuffix(prefix, ".")
				}
				errs = append(errs, fmt.Errorf("%s: %s%s is not a known field (%s has: %s)", source, prefix, k, where, strings.Join(names, ", ")))
				continue
			}
			errs = append(errs, unknownFields(m[k], ft, prefix+k+".", source)...)
		}
		return errs
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return nil
		}
		var errs []error
		for i, item := range items {
			errs = append(errs, unknownFields(item, t.Elem(), fmt.Sprintf("%s[%d].", strings.TrimSuffix(prefix, "."), i), source)...)
		}
		return errs
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

func typeWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return typeWord(t.Elem())
	}
	return t.String()
}
