#!/usr/bin/env bash
# make bench-big: three Herald nodes on three Redis shards holding 57,000
# mixed WS/SSE connections (herald-bench splits them over worker
# processes), with broadcast and per-user load. Best effort on a 2-core
# machine: see docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/lib.sh

REDIS_PORTS=(${REDIS_PORTS:-7101 7102 7103})
NODE_PORTS=(${NODE_PORTS:-18001 18002 18003})
WS=${WS:-37000}
SSE=${SSE:-20000}
DURATION=${DURATION:-30s}

build
for p in "${REDIS_PORTS[@]}" "${NODE_PORTS[@]}"; do port_free "$p"; done
shards=""
for p in "${REDIS_PORTS[@]}"; do
	redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
		--maxclients 10000 >>"$OUT/redis-$p.log" 2>&1 &
	PIDS+=($!)
	shards+="${shards:+,}127.0.0.1:$p"
done
for p in "${REDIS_PORTS[@]}"; do wait_port "$p"; done
targets=()
pids=()
for p in "${NODE_PORTS[@]}"; do
	HERALD_SERVER__LISTEN=127.0.0.1:$p HERALD_LOG__LEVEL=warn HERALD_DEV__ENABLED=false \
		HERALD_FANOUT__BROKER=redis HERALD_FANOUT__REDIS__SHARDS=$shards \
		"$BIN/herald" --config configs/dev.yaml >>"$OUT/herald-$p.log" 2>&1 &
	PIDS+=($!)
	targets+=(--target "127.0.0.1:$p")
	pids+=(--pid "$!")
done
for p in "${NODE_PORTS[@]}"; do wait_port "$p"; done
"$BIN/herald-bench" --label big --scenario mixed "${targets[@]}" "${pids[@]}" --ws "$WS" --sse "$SSE" \
	--broadcast-rate 1 --user-rate 200 --duration "$DURATION" --settle 5s --drain 20s --src 127.0.8.2 \
	--out "$OUT/big.json" --html "$OUT/big.html" | tee "$OUT/big-summary.txt"
