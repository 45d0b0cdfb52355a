#!/usr/bin/env bash
# Builds the Debian base image with debootstrap (no registry involved) and imports it.
. "$(dirname "$0")/../../lib.sh"

pkgs=bash,ca-certificates,iptables,nftables,ipset,conntrack,ethtool,iproute2,util-linux,mount,kmod,findutils,coreutils,libseccomp2,procps,iputils-ping
command -v debootstrap >/dev/null || {
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
} || die "debootstrap is missing and could not be installed"

root="$LAB_CACHE/work/rootfs-debian"
rm -rf "$root"
debootstrap --variant=minbase --include="$pkgs" "$DEBIAN_SUITE" "$root"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change "LABEL $LAB_LABEL" --change "LABEL io.k3snet.lab=true" \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE_REF"
rm -rf "$root"
