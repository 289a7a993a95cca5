# consentd: `make run` starts Redis and consentd locally; `make test` runs every
# check CI runs. Both install what they need when it is missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Code generators are pinned here (protoc-gen-go and the gateway plugins follow
# the versions in go.mod) and installed into .tools/bin, so `make generate`
# reproduces the committed code byte for byte on any machine.
TOOLS        := $(CURDIR)/.tools
TOOLS_BIN    := $(TOOLS)/bin
export PATH  := $(TOOLS_BIN):$(PATH)
BUF_VERSION             := v1.75.0
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
KUSTOMIZE_VERSION       := v5.7.1
STATICCHECK_VERSION     := v0.8.2
PROTOBUF_VERSION         = $(shell go list -m -f '{{.Version}}' google.golang.org/protobuf)
GATEWAY_VERSION          = $(shell go list -m -f '{{.Version}}' github.com/grpc-ecosystem/grpc-gateway/v2)

# apt-get needs root; use sudo when not root and sudo exists.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

GO_TEST_FLAGS ?= -race -count=1

.PHONY: help
help:
	@echo "make run       start Redis (persistent, in .run/) and consentd; Ctrl-C stops both"
	@echo "make test      install what is missing, then lint, check generated code, run all tests"
	@echo "make generate  regenerate Go, gRPC, gateway and OpenAPI code from proto/"
	@echo "make lint      buf lint, buf format, gofmt, go vet, staticcheck"
	@echo "make breaking  buf breaking against the committed baseline proto/breaking-baseline.json"
	@echo "make build     build ./consentd"
	@echo "make bench     benchmark consentd against a bare gRPC/gateway ceiling (~6 min; BENCH_SCALE=0.1: ~1 min), report in .bench/"
	@echo "make sdk       build the browser SDK into sdk-js/dist"
	@echo "make console   build the privacy console into server/console/dist (committed: consentd embeds it)"
	@echo "make bench-sdk the SDK's cost to a page in headless Chromium at 4x CPU throttling (~2 min), report in .bench/sdk/"

# --- set-up ------------------------------------------------------------------

.PHONY: redis-server
redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server from the OS packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium from the OS packages (for the SDK's browser tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# npm ci when package-lock.json is newer than what is installed.
sdk-js/node_modules/.package-lock.json: sdk-js/package-lock.json
	cd sdk-js && npm ci --no-audit --no-fund
	@touch $@

.PHONY: sdk-deps
sdk-deps: sdk-js/node_modules/.package-lock.json

# The console's packages (preact, htm, uPlot; esbuild, TypeScript,
# playwright-core, axe-core for its build and tests), likewise.
server/console/node_modules/.package-lock.json: server/console/package-lock.json
	cd server/console && npm ci --no-audit --no-fund
	@touch $@

.PHONY: console-deps
console-deps: server/console/node_modules/.package-lock.json

# One stamp per tool version: bumping a version reinstalls that tool only.
$(TOOLS)/stamps/buf-$(BUF_VERSION):
	GOBIN=$(TOOLS_BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@mkdir -p $(@D) && touch $@

$(TOOLS)/stamps/plugins-$(PROTOBUF_VERSION)-$(PROTOC_GEN_GO_GRPC_VERSION)-$(GATEWAY_VERSION):
	GOBIN=$(TOOLS_BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOBUF_VERSION)
	GOBIN=$(TOOLS_BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	GOBIN=$(TOOLS_BIN) go install \
	  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GATEWAY_VERSION) \
	  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GATEWAY_VERSION)
	@mkdir -p $(@D) && touch $@

# kustomize renders deploy/k8s for deploy/deploy_test.go.
$(TOOLS)/stamps/kustomize-$(KUSTOMIZE_VERSION):
	GOBIN=$(TOOLS_BIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@mkdir -p $(@D) && touch $@

# staticcheck is the Go linter of `make lint` (v0.8.2 is its release
# 2026.2.2). Pinned: a release that adds checks must not fail a `make test`
# of code nobody changed.
$(TOOLS)/stamps/staticcheck-$(STATICCHECK_VERSION):
	GOBIN=$(TOOLS_BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@mkdir -p $(@D) && touch $@

.PHONY: tools
tools: $(TOOLS)/stamps/buf-$(BUF_VERSION) $(TOOLS)/stamps/plugins-$(PROTOBUF_VERSION)-$(PROTOC_GEN_GO_GRPC_VERSION)-$(GATEWAY_VERSION) \
  $(TOOLS)/stamps/kustomize-$(KUSTOMIZE_VERSION) $(TOOLS)/stamps/staticcheck-$(STATICCHECK_VERSION)

# --- code generation and lint ------------------------------------------------

GENERATED_OPENAPI := server/gateway/openapi

.PHONY: generate
generate: tools
	buf generate

# Generates into a scratch folder and compares with the tree, so it also works
# with uncommitted proto edits and catches stale files of a deleted proto.
.PHONY: check-generated
check-generated: tools
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	buf generate --output "$$tmp"; \
	diff -r -x '*.proto' -x '*.yaml' -x $(notdir $(BREAKING_BASELINE)) proto "$$tmp/proto" && \
	diff -r $(GENERATED_OPENAPI) "$$tmp/$(GENERATED_OPENAPI)" || \
	  { echo "generated code is not current: run 'make generate' and commit the result"; exit 1; }
	@echo "generated code is current"

# The API contract must not break against the protos as last released: a
# committed image (proto/breaking-baseline.json, built from main at 968d7eb,
# the last commit that changed the protos when the check was added), so the
# check works on a clean, shallow CI checkout. After a release that changes
# the protos on purpose, `make breaking-baseline BASE=<commit>` and commit it.
BREAKING_BASELINE := proto/breaking-baseline.json
.PHONY: breaking
breaking: tools
	buf breaking --against $(BREAKING_BASELINE)
	@echo "no breaking change against $(BREAKING_BASELINE)"

.PHONY: breaking-baseline
breaking-baseline: tools
	@test -n "$(BASE)" || { echo "usage: make breaking-baseline BASE=<commit>"; exit 1; }
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	git archive "$(BASE)" proto buf.yaml | tar -x -C "$$tmp"; \
	(cd "$$tmp" && buf build --exclude-source-info -o image.json); \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],"w").write(json.dumps(d,indent=1)+"\n")' "$$tmp/image.json" $(BREAKING_BASELINE)

.PHONY: lint
lint: tools
	buf lint
	buf format --diff --exit-code proto
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	  [ -z "$$out" ] || { echo "gofmt would change: $$out"; exit 1; }
	go vet ./...
	staticcheck ./...

# --- build, run, test ----------------------------------------------------------

.PHONY: build
build:
	go build -o consentd ./server/cmd/consentd

.PHONY: sdk
sdk: sdk-deps
	cd sdk-js && npm run build

# The privacy console (/console/): its bundle is committed under
# server/console/dist, so a plain `go build` embeds it; rebuild and commit it
# after changing server/console/src or the SDK's ui.ts/ui.css it bundles.
.PHONY: console
console: console-deps
	cd server/console && npm run build

# Like check-generated: a fresh build into a scratch folder must equal the
# committed dist (esbuild's output is deterministic).
.PHONY: check-console
check-console: console-deps
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd server/console && node build.mjs "$$tmp") && diff -r server/console/dist "$$tmp" || \
	  { echo "server/console/dist is not current: run 'make console' and commit the result"; exit 1; }
	@echo "console bundle is current"

.PHONY: run
run: redis-server build sdk
	@deploy/local/run.sh

# The benchmark: its own Redis, consentd and a ceiling server (bare grpc-go and
# grpc-gateway) on free loopback ports, bounded load measured in one run, CPU
# profiles of consentd; report.md, report.json and the profiles in .bench/.
# BENCH_SCALE multiplies every duration and count (0.1: a quick look).
BENCH_SCALE ?= 1
.PHONY: bench
bench: redis-server build
	@mkdir -p .bench
	go build -o .bench/consentd-bench ./server/cmd/consentd-bench
	go build -o .bench/pprof cmd/pprof
	.bench/consentd-bench -consentd ./consentd -pprof .bench/pprof -out .bench -scale $(BENCH_SCALE)

# The SDK's cost to a page: the test shop page with and without the SDK's
# script tag in Debian's headless Chromium at 4x CPU throttling, against a
# real Redis and consentd on free loopback ports (first visit, returning
# visitor, returning visitor after a withdrawal through the API), median of
# BENCH_SDK_RUNS runs; report.md and report.json in .bench/sdk/.
BENCH_SDK_RUNS ?= 7
.PHONY: bench-sdk
bench-sdk: redis-server chromium sdk-deps build
	cd sdk-js && npm run build
	cd sdk-js && CONSENTD_BIN=$(CURDIR)/consentd BENCH_SDK_RUNS=$(BENCH_SDK_RUNS) npm run --silent bench

.PHONY: test
test: redis-server tools lint check-generated check-console breaking fuzz test-go test-sdk test-openapi test-console

.PHONY: test-go
test-go: redis-server $(TOOLS)/stamps/kustomize-$(KUSTOMIZE_VERSION)
	KUSTOMIZE=$(TOOLS_BIN)/kustomize go test $(GO_TEST_FLAGS) ./...

# Only the Redis Cluster and Sentinel tests (test-go runs them too, ~30 s):
# local clusters of redis-server processes, a master killed under traffic;
# -v prints what the clients saw during each failover.
.PHONY: test-cluster
test-cluster: redis-server
	go test $(GO_TEST_FLAGS) -v -run 'Cluster|Sentinel' ./server/store/ ./server/app/

# Only the resilience tests (test-go runs them too, ~60 s): Redis killed with
# kill -9 under writes (AOF, appendfsync always), unreachable (refused, black
# hole, reset), stalled (DEBUG SLEEP), and a soak of mixed traffic; -v prints
# what the clients saw. CONSENTD_SOAK=3m makes the soak longer (default 45s).
.PHONY: test-resilience
test-resilience: redis-server
	go test $(GO_TEST_FLAGS) -v -timeout 30m -run 'TestResilience' ./server/app/

# The SDK: lint (biome), build, type check, unit tests, size budget, the public types as a
# user's tsc sees them (the packed package under bundler, nodenext and node10
# resolution), then the browser tests in Debian's headless Chromium against a
# real consentd and Redis.
.PHONY: test-sdk
test-sdk: redis-server chromium sdk-deps build
	cd sdk-js && npm run --silent lint
	cd sdk-js && npm run build && npm run typecheck && npm run test:unit && npm run test:size && npm run test:types
	cd sdk-js && CONSENTD_BIN=$(CURDIR)/consentd npm run test:browser

# The privacy console: type check, then its browser tests in Debian's
# headless Chromium against a real consentd (with the committed bundle
# embedded) and Redis, with an API key of each scope. The tests reuse the
# SDK's browser harness (sdk-deps), and the analytics test's visitors load
# the built SDK (sdk). Screenshots land in server/console/test-results/.
.PHONY: test-console
test-console: redis-server chromium console-deps sdk check-console build
	cd server/console && npm run --silent typecheck
	cd server/console && CONSENTD_BIN=$(CURDIR)/consentd npm run --silent test:browser

# The API contract as a client generator sees it, against a real consentd and
# Redis (sdk-js/test/openapi): the served /openapi.json and /openapi.v3.json
# pass @redocly/cli lint with no errors (warnings are printed), openapi-typescript
# types compile against a typed use of the main calls, and an openapi-fetch
# client makes them, error answers included.
.PHONY: test-openapi
test-openapi: redis-server chromium sdk-deps build
	cd sdk-js && npm run build
	cd sdk-js && CONSENTD_BIN=$(CURDIR)/consentd npm run test:openapi

# A short, bounded run of each fuzz target on top of its committed seed
# corpus (testdata/fuzz); `make fuzz FUZZTIME=5000000x` digs deeper.
# The budget is a count of executions, not a duration: with a duration, Go
# 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" and no crasher when the deadline races a busy worker
# (go.dev/issue/75804, fixed in Go 1.27). 20,000 runs take ~0.4-7 s a target.
FUZZTIME ?= 20000x
FUZZ_TARGETS := \
	./server/domain:FuzzValidateSubjectID \
	./server/domain:FuzzParsePolicy \
	./server/domain:FuzzValidateDecisions \
	./server/auth:FuzzVerify \
	./server/api:FuzzParsePageToken \
	./server/api:FuzzValidateIdempotencyKey

.PHONY: fuzz
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
	  go test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg >/tmp/consentd-fuzz.log 2>&1 || { cat /tmp/consentd-fuzz.log; exit 1; }; \
	done
