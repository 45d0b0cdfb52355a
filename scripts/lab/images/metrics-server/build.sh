#!/usr/bin/env bash
# Builds metrics-server from its module (no replace directives; built in a module copy all
# the same, like every other module binary) and puts the static binary into "$1".
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

out="$LAB_CACHE/bin/metrics-server-$METRICS_SERVER_MODULE_VERSION"
if [ ! -x "$out/metrics-server" ]; then
	src=$(modsrc sigs.k8s.io/metrics-server "$METRICS_SERVER_MODULE_VERSION")
	mkdir -p "$out"
	# The same version variables upstream's Makefile sets (client-go's version package).
	(cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w \
		-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_MODULE_VERSION \
		-X k8s.io/client-go/pkg/version.gitTreeState=clean" \
		-o "$out/metrics-server.tmp" ./cmd/metrics-server)
	mv "$out/metrics-server.tmp" "$out/metrics-server"
fi
cp "$out/metrics-server" "$ctx/metrics-server"
