#!/usr/bin/env bash
# Builds helm from its module (a writable copy, so its replace directives apply) and puts it
# with the entry script into the build context "$1".
. "$(dirname "$0")/../../lib.sh"
ctx=${1:?usage: build.sh CONTEXT_DIR}

out="$LAB_CACHE/bin/helm-$HELM_MODULE_VERSION"
if [ ! -x "$out/helm" ]; then
	src=$(modsrc helm.sh/helm/v3 "$HELM_MODULE_VERSION")
	mkdir -p "$out"
	# As upstream's Makefile: the version, and the Kubernetes version helm assumes when it
	# renders without a cluster (client-go v0.31 → 1.31).
	(cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w \
		-X helm.sh/helm/v3/internal/version.version=$HELM_MODULE_VERSION \
		-X helm.sh/helm/v3/internal/version.gitTreeState=clean \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=31 \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=31" \
		-o "$out/helm.tmp" ./cmd/helm)
	mv "$out/helm.tmp" "$out/helm"
fi
cp "$out/helm" "$ctx/helm"
cp "$LAB_DIR/images/klipper-helm/entry" "$ctx/entry"
