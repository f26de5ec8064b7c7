GO ?= go
CONFIG ?= configs/dev.yaml

.PHONY: run build test test-short fuzz bench vet

## run: start Herald on the in-memory broker with the development config
run:
	$(GO) run ./cmd/herald --config $(CONFIG)

## build: build the binaries into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## test: every test, with the race detector, plus short fuzz runs
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=5s

## vet: go vet and gofmt check
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)

FUZZTIME ?= 30s
## fuzz: run each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseCursor$$' -fuzztime $(FUZZTIME) ./protocols/
	$(GO) test -run '^$$' -fuzz '^FuzzParseInbound$$' -fuzztime $(FUZZTIME) ./protocols/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePublish$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./edge/auth/

## bench: hot-path Go benchmarks with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./protocols/ ./fanout/ ./edge/
