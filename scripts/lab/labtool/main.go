// Command labtool is the lab's small helper binary. It has two jobs:
//
//   - "labtool true" exits 0. It is the whole content of the lab's tiny image, used to test
//     whether the Docker engine can start a privileged container without pulling anything.
//
//   - Invoked under the name "k3snet-runc" it is an OCI runtime wrapper. Some sandboxes run
//     every process with a capability bounding set that lacks a few capabilities (seen:
//     CAP_SYS_RESOURCE). Docker 20.10 asks runc for *all* capabilities in a privileged
//     container, runc fails with "unable to apply caps: operation not permitted", and k3d
//     only creates privileged node containers. The wrapper removes from the OCI process spec
//     every capability that is not in its own bounding set (which it cannot gain anyway),
//     then execs the real runc. Nothing else in the spec is touched.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// realRunc is where Debian's runc package installs runc; LAB_REAL_RUNC overrides it.
const realRunc = "/usr/sbin/runc"

func main() {
	if filepath.Base(os.Args[0]) == "k3snet-runc" {
		wrapRunc(os.Args)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "true" {
		return
	}
	fmt.Fprintln(os.Stderr, "usage: labtool true | (as k3snet-runc) <runc arguments>")
	os.Exit(2)
}

func wrapRunc(args []string) {
	real := realRunc
	if v := os.Getenv("LAB_REAL_RUNC"); v != "" {
		real = v
	}
	if spec := specFile(args[1:]); spec != "" {
		if err := trimCaps(spec); err != nil {
			fmt.Fprintf(os.Stderr, "k3snet-runc: %v\n", err)
			os.Exit(1)
		}
	}
	args[0] = real
	if err := syscall.Exec(real, args, os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "k3snet-runc: exec %s: %v\n", real, err)
		os.Exit(1)
	}
}

// specFile finds the JSON file that carries the process capabilities for this runc call:
// <bundle>/config.json for create/run, the --process file for exec.
func specFile(args []string) string {
	cmd, bundle, process := "", ".", ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() string {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
				return v
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "--bundle" || a == "-b" || strings.HasPrefix(a, "--bundle="):
			bundle = val()
		case a == "--process" || a == "-p" || strings.HasPrefix(a, "--process="):
			process = val()
		case a == "--root" || a == "--log" || a == "--log-format" || a == "--criu" || a == "--pid-file" || a == "--console-socket":
			i++ // global or command flags with a value we do not need
		case !strings.HasPrefix(a, "-") && cmd == "":
			cmd = a
		}
	}
	switch cmd {
	case "create", "run":
		return filepath.Join(bundle, "config.json")
	case "exec":
		return process
	}
	return ""
}

func boundingSet() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("CapBnd not found in /proc/self/status")
}

func trimCaps(path string) error {
	bnd, err := boundingSet()
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	proc := doc
	if p, ok := doc["process"].(map[string]any); ok { // config.json nests it; --process files do not
		proc = p
	}
	caps, ok := proc["capabilities"].(map[string]any)
	if !ok {
		return nil
	}
	changed := false
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := list[:0:0]
		for _, c := range list {
			name, _ := c.(string)
			if n, known := capNumber[name]; known && bnd&(1<<n) == 0 {
				changed = true
				continue
			}
			kept = append(kept, c)
		}
		caps[set] = kept
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// capNumber maps capability names to their bit numbers (linux/capability.h).
var capNumber = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}
