#!/usr/bin/env bash
# Builds CoreDNS from its module (a writable copy, at the module root, with the plugin set
# the release compiled in: core/plugin/zplugin.go is generated from plugin.cfg and shipped
# in the module, so no `go generate` is needed; every plugin k3s's Corefile uses is in it)
# and puts the static binary into the build context "$1".
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

out="$LAB_CACHE/bin/coredns-$COREDNS_MODULE_VERSION"
if [ ! -x "$out/coredns" ]; then
	src=$(modsrc github.com/coredns/coredns "$COREDNS_MODULE_VERSION")
	mkdir -p "$out"
	(cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath \
		-ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_MODULE_VERSION" \
		-o "$out/coredns.tmp" .)
	mv "$out/coredns.tmp" "$out/coredns"
fi
cp "$out/coredns" "$ctx/coredns"
