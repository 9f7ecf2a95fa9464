# Verdant: `make demo` runs it locally, `make test` runs everything CI runs.
# Both install what they need (Kubernetes components are built from their Go modules
# on first use and cached in ~/.cache/verdant/tools).

SHELL := /bin/bash
CARGO ?= cargo
STATE := .verdant
KUBECONFIG_LOCAL := $(CURDIR)/$(STATE)/kubeconfig
TOOLS_BIN = $(shell hack/tools.sh --print-dir)/bin
KUBECTL = KUBECONFIG=$(KUBECONFIG_LOCAL) $(TOOLS_BIN)/kubectl

.PHONY: help prereqs tools crds cluster-up cluster-down demo demo-down test lint unit e2e fmt bench bench-e2e bench-scale postgres bench-store evaluate bench-sim images fuzz

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

prereqs: ## Install the system packages the build and tests need (Debian)
	@hack/prereqs.sh

tools: prereqs ## Build the control plane (Kubernetes components, etcd, kwok) from their Go modules (cached)
	@hack/tools.sh

crds: ## Regenerate crds/*.yaml (and the Helm chart's copy) from the Rust types
	$(CARGO) run -q -p verdant-crds --bin crdgen
	$(CARGO) run -q -p verdant-crds --bin crdgen helm/verdant/crds

# The local cluster has the machine's one real node unless NODE=kwok (KWOK nodes only,
# e.g. for the scale benches).
NODE ?= real

cluster-up: tools ## Start the local cluster with its real node (NODE=kwok: none); kubeconfig in .verdant/kubeconfig
ifeq ($(NODE),real)
	@hack/tools.sh node
	@hack/images.sh build
	@hack/control-plane.sh up $(STATE) --real-node
else
	@hack/control-plane.sh up $(STATE)
endif

cluster-down: ## Stop the local control plane and remove its state
	@hack/control-plane.sh down $(STATE)

# Where hack/node.sh's containerd listens while the local real node runs.
NODE_CONTAINERD := /run/verdant-node/containerd.sock

images: prereqs ## Build the operator, agent, trainer and pause images (cached) and load them into the local node if it runs
	@hack/images.sh build
	@if [ -S $(NODE_CONTAINERD) ]; then hack/images.sh load --address $(NODE_CONTAINERD); \
	else echo "no local node is running ($(NODE_CONTAINERD)): images built, none loaded"; hack/images.sh list; fi

# DEMO_NODE=real: the operator and the agent run from the Helm chart on the real node.
DEMO_NODE ?= kwok

demo: tools ## Local control plane, fake GPU nodes, the operator, the examples (DEMO_NODE=real: chart on the real node)
ifeq ($(DEMO_NODE),real)
	@hack/tools.sh node
endif
	@VERDANT_DEMO_NODE=$(DEMO_NODE) hack/demo.sh up

demo-down: ## Stop the demo
	@hack/demo.sh down

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt, clippy -D warnings, no circle of imports between files, no file over 500 lines
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	python3 hack/modcycles.py --max-lines 500 core/src crds/src operator/src agent/src sim/src store/src

# A fresh database on the private PostgreSQL (hack/postgres.sh) for each run of the tests
# that need one; exported as VERDANT_TEST_POSTGRES_URL.
WITH_POSTGRES = VERDANT_TEST_POSTGRES_URL="$$(hack/postgres.sh up)"

postgres: ## Start the private PostgreSQL of the tests and benches (installs Debian's if missing)
	@hack/postgres.sh up >/dev/null
	@hack/postgres.sh status

unit: postgres ## Unit and property tests, and the store on SQLite and PostgreSQL (no cluster)
	$(WITH_POSTGRES) $(CARGO) test --workspace --locked --exclude verdant-tests

e2e: tools postgres ## End-to-end tests against a real control plane (each run starts its own)
	@hack/tools.sh helm
	$(WITH_POSTGRES) $(CARGO) test -p verdant-tests --locked -- --test-threads=4

bench: ## Criterion benchmarks of the pure engine and models (release)
	$(CARGO) bench -p verdant-core

bench-e2e: tools ## 200 TrainingJobs on a 500-node KWOK cluster, to every pod bound (release)
	$(CARGO) build --release -p verdant-tests --bins
	target/release/bench-e2e-placement

# Flags of the scale bench, e.g. BENCH_SCALE_FLAGS="--nodes 500 --small-jobs 200 --gangs 25"
# (bench-scale --help lists them all).
BENCH_SCALE_FLAGS ?=

bench-scale: tools ## kube-scheduler and Verdant side by side on 5,000 KWOK nodes → target/bench-scale/result.json (release, ~1 h here)
	$(CARGO) build --release --locked -p verdant-tests --bin bench-scale --bin e2e-operator
	target/release/bench-scale $(BENCH_SCALE_FLAGS)

bench-store: postgres ## Ingest throughput of the energy store, SQLite and PostgreSQL (release)
	$(WITH_POSTGRES) $(CARGO) bench -p verdant-store --bench ingest_throughput

evaluate: ## The standing experiment: 3 sites, summer and winter, ITP trace, 4 policies → docs/evaluation.md (~1 min)
	$(CARGO) run --release --locked -p verdant-sim --bin verdant-evaluate

bench-sim: ## Times the simulator on the evaluation's summer weeks: policies but the oracle, and the oracle (release)
	$(CARGO) run --release --locked -p verdant-sim --bin sim-bench -- --runs 3 \
	  --sites docs/evaluation/sites --trace sim/data/itp/cluster07.csv --from 2019-06-01 \
	  --interruptible-share 1 --out target/bench-sim

# Seconds each fuzz target runs: `make fuzz` (every target; the corpus is then minimized
# into fuzz/corpus) and the short run in `make test`, of FUZZ_TEST_TARGETS: all 8 targets
# by default (they need only verdant-core and verdant-crds, not the operator);
# FUZZ_TEST_TARGETS=weather runs the four weather parsers only.
FUZZ_SECONDS ?= 600
FUZZ_TEST_SECONDS ?= 15
FUZZ_TEST_TARGETS ?= all

fuzz: ## Fuzz every parser of outside input, FUZZ_SECONDS each (default 600); installs cargo-fuzz
	fuzz/run.sh --merge $(FUZZ_SECONDS) all

test: tools lint postgres ## Everything CI runs
	@hack/tools.sh helm
	$(WITH_POSTGRES) $(CARGO) test --workspace --locked --no-fail-fast
	fuzz/run.sh $(FUZZ_TEST_SECONDS) $(FUZZ_TEST_TARGETS)
