#!/usr/bin/env bash
# Makes sure a Docker engine runs that can start privileged containers (k3d's node
# containers are privileged). Idempotent:
#   - an engine that answers and starts a privileged container is left alone;
#   - with no engine, Debian's docker.io is installed if missing and dockerd is started
#     detached (own session, pidfile, log);
#   - only when a privileged container fails because capabilities are missing from the
#     bounding set (see scripts/lab/labtool) is the capability-trimming runc wrapper installed
#     as the default runtime of the engine this script started. An engine started by someone
#     else is never reconfigured or restarted.
. "$(dirname "$0")/lib.sh"

PIDFILE=/var/run/k3snet-dockerd.pid
DLOG="$LAB_CACHE/logs/dockerd.log"
WRAPPER=/usr/local/lib/k3snet/k3snet-runc
TINY=k3snet.local/lab-tiny:1

engine_up() { docker info >/dev/null 2>&1; }
ours() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

labtool_bin() {
	local out
	out="$LAB_CACHE/bin/labtool-$(recipe_hash "$LAB_DIR/labtool/main.go")"
	if [ ! -x "$out" ]; then
		(cd "$REPO_DIR" && CGO_ENABLED=0 "$GO" build -trimpath -o "$out" ./scripts/lab/labtool) || die "building labtool failed"
	fi
	echo "$out"
}

tiny_image() {
	have_image "$TINY" && return 0
	local ctx; ctx=$(mktemp -d)
	cp "$(labtool_bin)" "$ctx/labtool"
	printf 'FROM scratch\nCOPY labtool /labtool\nCMD ["/labtool", "true"]\n' >"$ctx/Dockerfile"
	docker build -q -t "$TINY" "$ctx" >/dev/null || die "cannot build $TINY"
	rm -rf "$ctx"
}

# privileged_ok prints the error of a failed privileged run on stderr.
privileged_ok() { docker run --rm --privileged "$TINY" /labtool true >/dev/null 2>"$LAB_CACHE/logs/privileged-test.log"; }

start_engine() {
	if ! command -v dockerd >/dev/null; then
		[ "$(id -u)" = 0 ] || die "dockerd is not installed and installing it needs root"
		log "installing Debian's docker.io"
		t0=$(date +%s)
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io; } \
			>"$LAB_CACHE/logs/apt-docker.log" 2>&1 || die "apt-get install docker.io failed, see $LAB_CACHE/logs/apt-docker.log"
		log "docker.io installed in $(( $(date +%s) - t0 ))s"
	fi
	[ "$(id -u)" = 0 ] || die "starting dockerd needs root"
	log "starting dockerd (log: $DLOG)"
	setsid dockerd --pidfile "$PIDFILE" >>"$DLOG" 2>&1 </dev/null &
	for _ in $(seq 1 60); do
		engine_up && { log "dockerd is up"; return 0; }
		sleep 0.5
	done
	tail -n 20 "$DLOG" >&2
	die "dockerd did not answer within 30s, see $DLOG"
}

stop_our_engine() {
	local pid; pid=$(cat "$PIDFILE")
	kill "$pid"
	for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
	die "dockerd (pid $pid) did not stop"
}

install_wrapper() {
	local real; real=$(command -v runc || true)
	[ -n "$real" ] || die "runc not found"
	mkdir -p "$(dirname "$WRAPPER")"
	cp "$(labtool_bin)" "$WRAPPER.tmp" && mv "$WRAPPER.tmp" "$WRAPPER"
	if [ -f /etc/docker/daemon.json ] && ! grep -q k3snet-runc /etc/docker/daemon.json; then
		die "/etc/docker/daemon.json exists and is not ours; add a runtime that trims capabilities by hand (see scripts/lab/labtool)"
	fi
	mkdir -p /etc/docker
	cat >/etc/docker/daemon.json <<JSON
{
  "runtimes": { "k3snet-runc": { "path": "$WRAPPER", "runtimeArgs": [] } },
  "default-runtime": "k3snet-runc"
}
JSON
	# The wrapper execs the runc it was installed against.
	if [ "$real" != /usr/sbin/runc ]; then die "runc is at $real, the wrapper expects /usr/sbin/runc"; fi
}

if ! engine_up; then
	command -v docker >/dev/null || [ "$(id -u)" = 0 ] || die "no docker client"
	start_engine
fi
tiny_image
if privileged_ok; then
	log "Docker engine ready (privileged containers work)"
	exit 0
fi
if ! grep -q "unable to apply caps\|operation not permitted" "$LAB_CACHE/logs/privileged-test.log"; then
	cat "$LAB_CACHE/logs/privileged-test.log" >&2
	die "privileged containers fail for a reason the lab does not know how to fix"
fi
if ! ours; then
	cat "$LAB_CACHE/logs/privileged-test.log" >&2
	die "the running Docker engine cannot start privileged containers (capabilities missing from the bounding set) and was not started by this script; not touching it"
fi
log "privileged containers fail (capabilities missing from the bounding set): installing the runc wrapper"
install_wrapper
stop_our_engine
start_engine
privileged_ok || { cat "$LAB_CACHE/logs/privileged-test.log" >&2; die "privileged containers still fail with the runc wrapper"; }
log "Docker engine ready (privileged containers work through $WRAPPER)"
