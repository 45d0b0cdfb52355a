#!/usr/bin/env bash
# Builds traefik v2 as the main module of a writable copy (its replace directives must
# apply) and puts the static binary and a CA bundle into the build context "$1".
# About 7.5 minutes on two busy cores; the binary is cached per version.
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

out="$LAB_CACHE/bin/traefik-$TRAEFIK_MODULE_VERSION"
src=$(modsrc github.com/traefik/traefik/v2 "$TRAEFIK_MODULE_VERSION")
if [ ! -x "$out/traefik" ]; then
	mkdir -p "$out"
	# Only the packages the build needs are downloaded: a full `go mod download` fails on
	# inet.af/netaddr, which the binary does not use. Codename: the v2.11 release name.
	(cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w \
		-X github.com/traefik/traefik/v2/pkg/version.Version=$TRAEFIK_MODULE_VERSION \
		-X github.com/traefik/traefik/v2/pkg/version.Codename=mimolette" \
		-o "$out/traefik.tmp" ./cmd/traefik)
	mv "$out/traefik.tmp" "$out/traefik"
fi
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs"
cp "$out/traefik" "$ctx/rootfs/usr/local/bin/traefik"
# The module ships the CA bundle its release images carry; traefik needs one for ACME or
# HTTPS backends with public certificates, and a scratch image has none.
cp "$src/script/ca-certificates.crt" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
