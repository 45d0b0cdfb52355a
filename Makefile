# k3snet e2e. Every knob is an environment variable; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Written by `make images` (lab) or `make setup` (official images); defines K3S_IMAGE,
# K3S_VERSION, NETPROBE_IMAGE, METALLB_MANIFEST, ... Explicit environment variables win.
# Make lets an included file override the environment; keep the environment's values.
IMAGE_VARS := IMAGE_SOURCE K3S_IMAGE K3S_VERSION K3D_IMAGE_TOOLS NETPROBE_IMAGE METALLB_MANIFEST METALLB_IMAGES
$(foreach v,$(IMAGE_VARS),$(if $(filter environment,$(origin $(v))),$(eval _env_$(v) := $$($(v)))))
-include .lab/images.env
$(foreach v,$(IMAGE_VARS),$(if $(_env_$(v)),$(eval $(v) := $$(_env_$(v)))))
export IMAGE_SOURCE K3S_IMAGE K3S_VERSION K3D_IMAGE_TOOLS NETPROBE_IMAGE METALLB_MANIFEST METALLB_IMAGES

ARTIFACTS     ?= $(CURDIR)/_artifacts
LABELS        ?=
PROFILES      ?=
KEEP_CLUSTERS ?= never
# One run id for every parallel process, so cleanup and reports see the whole run.
ifndef RUN_ID
RUN_ID := $(shell od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
endif
# Profiles (clusters) run at once; each is one ginkgo process. Default: what the free memory
# holds, at most one per CPU (scripts/parallel.sh says why).
ifndef PARALLEL
PARALLEL := $(shell scripts/parallel.sh)
endif
IMAGES        ?= auto
GINKGO_FLAGS  ?=
E2E_TIMEOUT   ?= 80m
export ARTIFACTS PROFILES KEEP_CLUSTERS RUN_ID

GO     ?= go
GINKGO := $(GO) tool ginkgo
UNIT_PKGS = $$($(GO) list ./... | grep -v /suites/)

.PHONY: help ci docker images images-list images-save setup e2e e2e-run e2e-existing test lint clean-clusters

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

ci: ## what CI runs (.ci/run): set-up, lint, unit tests, e2e
	@$(SETUP)
	@$(MAKE) --no-print-directory lint test e2e-run

docker: ## start a Docker engine that can run privileged containers (idempotent)
	@scripts/lab/docker.sh

images: ## build every image the suite needs, offline, into the local Docker (cached)
	@scripts/lab/images.sh build

images-list: ## print every image reference the lab provides
	@scripts/lab/images.sh list

images-save: ## write every lab image into one archive for air-gapped machines
	@mkdir -p $(ARTIFACTS) && scripts/lab/images.sh save $(ARTIFACTS)/k3snet-images.tar

# setup.sh sees only the K3S_IMAGE/K3S_VERSION the caller set: the values included from
# .lab/images.env would otherwise read as a request for those exact images.
SETUP = K3S_IMAGE='$(_env_K3S_IMAGE)' K3S_VERSION='$(_env_K3S_VERSION)' IMAGES=$(IMAGES) scripts/setup.sh

setup: ## engine + images: official images when a registry answers, else the offline lab
	@$(SETUP)

e2e: setup ## the main job: set up, boot one cluster per profile, run the checks
	@$(MAKE) --no-print-directory e2e-run

# run_network_suite FLAGS: the ginkgo run of suites/network both e2e targets make; a red run
# ends with summary.md's failures (what failed and where its diagnostics are), not only
# ginkgo's code locations.
run_network_suite = $(GINKGO) run -v --fail-on-empty --timeout=$(E2E_TIMEOUT) $(1) \
	--junit-report=junit.xml --output-dir=$(ARTIFACTS) \
	$(if $(LABELS),--label-filter='$(LABELS)') $(GINKGO_FLAGS) ./suites/network \
	|| { scripts/show-failures.sh $(ARTIFACTS)/summary.md; exit 1; }

e2e-run: ## run the suites against images already prepared (no set-up)
	@mkdir -p $(ARTIFACTS)
	$(call run_network_suite,--procs=$(PARALLEL) --poll-progress-after=60s --poll-progress-interval=30s)

test: ## unit tests (no Docker needed)
	$(GO) test -count=1 $(UNIT_PKGS)

lint: ## vet, gofmt, golangci-lint, actionlint, shellcheck, shell syntax (scripts/lint.sh)
	@GO=$(GO) scripts/lint.sh

.PHONY: tools
tools: ## install the pinned lint tools into the cache (no-op when present)
	@GO=$(GO) scripts/lint.sh tools

clean-clusters: ## remove every cluster, network and volume any k3snet run left behind
	$(GO) run ./framework/cluster/cmd/k3snet-sweep

e2e-existing: ## checks against the cluster in $KUBECONFIG; PROFILE (name or .yaml) describes its network
	@test -n "$(KUBECONFIG)" || { echo "KUBECONFIG must name the existing cluster's kubeconfig"; exit 2; }
	@test -n "$(PROFILE)" || { echo "PROFILE must name the profile (or profile file) the cluster was configured with"; exit 2; }
	@mkdir -p $(ARTIFACTS)
	EXISTING_CLUSTER=1 PROFILES='$(PROFILE)' $(call run_network_suite,)

# Pre-upgrade validation (suites/upgrade): boot PROFILE at FROM, upgrade it node by node to TO
# (servers first, then agents) while measuring the interruption of pod traffic and DNS, then
# check the pod network on TO. FROM and TO are k3s versions (v1.31.1+k3s1 → rancher/k3s:…)
# or node images (any value with ':' or '/'); FROM defaults to K3S_IMAGE / K3S_VERSION.
# Report: $(ARTIFACTS)/upgrade.json and upgrade-junit.xml. setup.sh is given only the K3S_IMAGE
# and K3S_VERSION the caller set: the values included from .lab/images.env would make it switch
# to official images.
UPGRADE_TIMEOUT ?= 60m
# The suite runs in its package directory: a profile file is passed by absolute path.
upgrade_profile = $(if $(filter %.yaml %.yml,$(1)),$(abspath $(1)),$(1))
upgrade_kind = $(if $(or $(findstring :,$(1)),$(findstring /,$(1))),UPGRADE_$(2)_IMAGE,UPGRADE_$(2))
.PHONY: preupgrade
preupgrade: ## pre-upgrade validation: PROFILE=<name|file> FROM=<version|image> TO=<version|image>
	@test -n "$(TO)" || { echo "TO must name the target k3s version (v1.32.1+k3s1) or node image"; exit 2; }
	@if [ "$(SKIP_SETUP)" != 1 ]; then K3S_IMAGE='$(_env_K3S_IMAGE)' K3S_VERSION='$(_env_K3S_VERSION)' IMAGES=$(IMAGES) scripts/setup.sh; fi
	@mkdir -p $(ARTIFACTS)
	UPGRADE_PROFILE='$(call upgrade_profile,$(or $(PROFILE),vxlan))' $(if $(FROM),$(call upgrade_kind,$(FROM),FROM)='$(FROM)') \
	$(call upgrade_kind,$(TO),TO)='$(TO)' \
	$(GINKGO) run -v --timeout=$(UPGRADE_TIMEOUT) --poll-progress-after=120s --poll-progress-interval=60s \
		--junit-report=upgrade-junit.xml --output-dir=$(ARTIFACTS) $(GINKGO_FLAGS) ./suites/upgrade
