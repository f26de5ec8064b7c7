GO ?= go
CONFIG ?= configs/dev.yaml

.PHONY: run build test test-short fuzz bench vet e2e js chaos release ldflags image image-context

# Build stamps (`herald version`, the herald_build_info metric). A release
# sets VERSION=v1.2.3; otherwise it comes from `git describe`.
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
BI      := github.com/heraldrt/herald/internal/buildinfo
LDFLAGS := -s -w -X $(BI).version=$(VERSION) -X $(BI).commit=$(COMMIT) -X $(BI).date=$(DATE)
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
DIST    ?= dist

## run: start Herald on the in-memory broker with the development config
run:
	$(GO) run ./cmd/herald --config $(CONFIG)

## build: build the binaries into bin/ (stamped with VERSION, COMMIT, DATE)
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## ldflags: print the -ldflags a release build uses (tests build with the same)
ldflags:
	@echo '$(LDFLAGS)'

CONTAINER ?= podman
IMAGE_TAG ?= herald:$(VERSION)
IMAGE_CONTEXT ?= $(DIST)/image
## image-context: stage the static linux binary, default config and CA bundle for the Dockerfile
image-context:
	mkdir -p $(IMAGE_CONTEXT)
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(IMAGE_CONTEXT)/herald ./cmd/herald
	cp configs/herald.yaml $(IMAGE_CONTEXT)/herald.yaml
	cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_CONTEXT)/ca-certificates.crt

## image: build the container image $(IMAGE_TAG) FROM scratch (no base image to pull)
image: image-context
	$(CONTAINER) build --format docker --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
	  --build-arg DATE=$(DATE) -t $(IMAGE_TAG) -f Dockerfile $(IMAGE_CONTEXT)

## release: static binaries (CGO off) for PLATFORMS in $(DIST)/, archived, with SHA256SUMS
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; name=herald_$(VERSION)_$${os}_$${arch}; ext=; \
	  [ $$os = windows ] && ext=.exe; \
	  mkdir -p $(DIST)/$$name; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$name/herald$$ext ./cmd/herald; \
	  cp LICENSE README.md CHANGELOG.md configs/herald.yaml $(DIST)/$$name/; \
	  if [ $$os = windows ]; then (cd $(DIST) && zip -qr $$name.zip $$name); \
	  else tar -C $(DIST) --owner=0 --group=0 --numeric-owner -czf $(DIST)/$$name.tar.gz $$name; fi; \
	done
	cd $(DIST) && sha256sum *.tar.gz *.zip > SHA256SUMS && cat SHA256SUMS

## test: every test, with the race detector, plus short fuzz runs
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	# Zero-allocation checks skip under -race (it allocates): run them without.
	$(GO) test -count=1 -run 'NoAllocs' ./protocols/ ./edge/
	$(MAKE) fuzz FUZZTIME=2000x

## chaos: the fault suite, long form (every fault, 3x longer faults); prints the table
## (`make test` runs the short faults as part of ./...). CHAOS_TABLE=file also writes it.
chaos:
	CHAOS_LONG=1 $(GO) test -count=1 -timeout 30m -v -run '^TestChaos$$' ./chaos/

## e2e: browser (Chromium), nginx, TLS and herald.js tests; screenshots in $(ARTIFACTS)
ARTIFACTS ?= bench/out/e2e
e2e:
	HERALD_ARTIFACTS=$(abspath $(ARTIFACTS)) $(GO) test -race -count=1 -timeout 10m -v ./e2e/

## js: regenerate the served, minified herald.js (clients/js/herald.min.js) and run its node tests
js:
	$(GO) generate ./clients/js/
	cd clients/js && node --test test/herald.test.mjs

## vet: go vet and gofmt check
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)

FUZZTIME ?= 30s
## fuzz: run each fuzz target for FUZZTIME (and fail if one in the tree is not listed here)
fuzz:
	@missing=$$(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed 's/^func //' | sort -u | \
		while read -r f; do grep -qF -- "-fuzz '^$$f\$$\$$'" Makefile || echo "$$f"; done); \
		test -z "$$missing" || { echo "fuzz targets not listed in the Makefile's fuzz target:" $$missing; exit 1; }
	$(GO) test -run '^$$' -fuzz '^FuzzParseCursor$$' -fuzztime $(FUZZTIME) ./protocols/
	$(GO) test -run '^$$' -fuzz '^FuzzParseInbound$$' -fuzztime $(FUZZTIME) ./protocols/
	$(GO) test -run '^$$' -fuzz '^FuzzServeWS$$' -fuzztime $(FUZZTIME) ./protocols/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePublish$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzClientJSHeaders$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./edge/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzSignedClaims$$' -fuzztime $(FUZZTIME) ./edge/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMsgpack$$' -fuzztime $(FUZZTIME) ./compat/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePayload$$' -fuzztime $(FUZZTIME) ./fanout/
	$(GO) test -run '^$$' -fuzz '^FuzzParseJWKS$$' -fuzztime $(FUZZTIME) ./edge/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzParseTypeFilter$$' -fuzztime $(FUZZTIME) ./protocols/
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZTIME) ./internal/glob/

## bench: hot-path Go benchmarks with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./protocols/ ./fanout/ ./edge/ ./compat/

# ---- benchmarks (herald-bench) ----
# Load benchmarks with cmd/herald-bench against real processes (the `bench`
# target above runs the Go micro-benchmarks). Results go to bench/out/.
.PHONY: bench-load bench-big bench-storm

## bench-load: Herald vs the floor server: idle 10k WS + 5k SSE, broadcast to 10k WS at 1 and 20 msgs/s (memory and Redis broker), per-user 1,000 msgs/s, resume (~6 min)
bench-load:
	GO=$(GO) bash bench/scripts/load.sh

## bench-big: 3 Herald nodes on 3 Redis shards, 57,000 mixed WS/SSE connections (19,000 per node), broadcast + per-user
bench-big:
	GO=$(GO) bash bench/scripts/big.sh

## bench-storm: reconnect storm: ~18,000 WS+SSE on one of 3 Herald nodes (3 Redis shards), SIGTERM then SIGKILL it; time until everyone is back on the survivors, refusals, loss (scale with WS=, SSE=)
bench-storm:
	GO=$(GO) bash bench/scripts/storm.sh
