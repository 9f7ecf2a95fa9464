# Verdant: `make demo` runs it locally, `make test` runs everything CI runs.
# Both install what they need (Kubernetes components are built from their Go modules
# on first use and cached in ~/.cache/verdant/tools).

SHELL := /bin/bash
CARGO ?= cargo
STATE := .verdant
KUBECONFIG_LOCAL := $(CURDIR)/$(STATE)/kubeconfig
TOOLS_BIN = $(shell hack/tools.sh --print-dir)/bin
KUBECTL = KUBECONFIG=$(KUBECONFIG_LOCAL) $(TOOLS_BIN)/kubectl

.PHONY: help prereqs tools crds cluster-up cluster-down demo demo-down test lint unit e2e fmt

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

prereqs: ## Install the system packages the build and tests need (Debian)
	@hack/prereqs.sh

tools: prereqs ## Build etcd, kube-apiserver, kubectl and kwok from their Go modules (cached)
	@hack/tools.sh

crds: ## Regenerate crds/*.yaml from the Rust types
	$(CARGO) run -q -p verdant-crds --bin crdgen

cluster-up: tools ## Start etcd, kube-apiserver and kwok; kubeconfig in .verdant/kubeconfig
	@hack/control-plane.sh up $(STATE)

cluster-down: ## Stop the local control plane and remove its state
	@hack/control-plane.sh down $(STATE)

demo: cluster-up ## Local control plane, fake GPU nodes, the examples, and kubectl get
	@hack/fake-nodes.sh $(KUBECONFIG_LOCAL) solar-a 4 8
	@hack/fake-nodes.sh $(KUBECONFIG_LOCAL) wind-b 4 8
	@# No controller-manager here: create the ServiceAccount it would create.
	@$(KUBECTL) create serviceaccount default -n default >/dev/null 2>&1 || true
	@$(KUBECTL) apply -f docs/examples/ >/dev/null
	@$(KUBECTL) get nodes -L verdant.dev/site,nvidia.com/gpu.product
	@echo
	@$(KUBECTL) get tj,esite
	@echo
	@echo "The control plane keeps running. Try:"
	@echo "  export KUBECONFIG=$(KUBECONFIG_LOCAL)"
	@echo "  $(TOOLS_BIN)/kubectl explain trainingjob.spec.energy"
	@echo "Stop it with: make demo-down"

demo-down: cluster-down ## Stop the demo

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt, clippy -D warnings, and the CRD manifests match the types
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit: ## Unit and property tests (no cluster)
	$(CARGO) test --workspace --locked --exclude verdant-tests

e2e: tools ## End-to-end tests against a real control plane (each run starts its own)
	$(CARGO) test -p verdant-tests --locked -- --test-threads=4

test: tools lint ## Everything CI runs
	$(CARGO) test --workspace --locked --no-fail-fast
