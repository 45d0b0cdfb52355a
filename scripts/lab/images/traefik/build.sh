#!/usr/bin/env bash
# Builds traefik v2 as the main module of a writable copy (its replace directives must
# apply) and puts the static binary and a CA bundle into the build context "$1".
# lego's ACME DNS-01 provider registry is the lab's own (lego-dns-providers.go.in says which
# providers and why): traefik's code is the release's, and so is every module version.
# About 7 minutes on two busy cores (10 with every provider); the binary is cached per
# version and registry.
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

registry="$LAB_DIR/images/traefik/lego-dns-providers.go.in"
out="$LAB_CACHE/bin/traefik-$TRAEFIK_MODULE_VERSION-$(recipe_hash "$registry")"
src=$(modsrc github.com/traefik/traefik/v2 "$TRAEFIK_MODULE_VERSION")
if [ ! -x "$out/traefik" ]; then
	mkdir -p "$out"
	# lego at the version traefik's go.mod selects, copied with the lab's registry in place.
	lego=$(moddir github.com/go-acme/lego/v4 "$src")
	lab_lego="$LAB_CACHE/src/lego-lab@${lego##*@}"
	rm -rf "$lab_lego"; cp -r "$lego" "$lab_lego"; chmod -R u+w "$lab_lego"
	cp "$registry" "$lab_lego/providers/dns/dns_providers.go"
	# The release's go.mod stays as it is: the build reads a copy that adds one replace.
	cp "$src/go.mod" "$src/lab.mod"; cp "$src/go.sum" "$src/lab.sum"
	"$GO" mod edit -replace "github.com/go-acme/lego/v4=$lab_lego" "$src/lab.mod"
	# Only the packages the build needs are downloaded: a full `go mod download` fails on
	# inet.af/netaddr, which the binary does not use. Codename: the v2.11 release name.
	(cd "$src" && CGO_ENABLED=0 "$GO" build -modfile=lab.mod -trimpath -ldflags "-s -w \
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
