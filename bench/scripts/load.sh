#!/usr/bin/env bash
# make bench-load: Herald (memory broker; one broadcast run on the Redis broker) and the floor server, each started
# fresh for every scenario, driven by herald-bench with --compare-floor.
# Results: $OUT/<scenario>.json and .html, and $OUT/index.html for all.
# Scale with WS=, SSE=, DURATION= (defaults fit in about 6 minutes).
# herald-bench publishes with 64 requests in flight (its default); add
# --publish-ordered to a run for the one-at-a-time publisher.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/lib.sh

HPORT=${HPORT:-18000}
FPORT=${FPORT:-18100}
WS=${WS:-10000}
SSE=${SSE:-5000}
DURATION=${DURATION:-20s}
SECRET=dev-secret-change-me-0123456789abcdef
APIKEY=dev-api-key-change-me

build
port_free "$HPORT"
port_free "$FPORT"
rm -f "$OUT"/*.json "$OUT"/*.html "$OUT"/*.log "$OUT"/summary.txt

RPORT=${RPORT:-7111}

# start_servers: Herald (memory broker, or BROKER=redis: one redis-server
# shard started here) and the floor, fresh.
start_servers() {
	local env=(HERALD_SERVER__LISTEN=127.0.0.1:$HPORT HERALD_LOG__LEVEL=warn HERALD_DEV__ENABLED=false)
	if [[ "${BROKER:-memory}" == redis ]]; then
		port_free "$RPORT"
		redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
			>>"$OUT/redis.log" 2>&1 &
		PIDS+=($!)
		wait_port "$RPORT"
		env+=(HERALD_FANOUT__BROKER=redis HERALD_FANOUT__REDIS__SHARDS=127.0.0.1:$RPORT)
	fi
	env "${env[@]}" "$BIN/herald" --config configs/dev.yaml >>"$OUT/herald.log" 2>&1 &
	HPID=$!
	PIDS+=("$HPID")
	"$BIN/herald-floor" --listen "127.0.0.1:$FPORT" --coalesce "${FLOOR_COALESCE:-0}" >>"$OUT/floor.log" 2>&1 &
	FPID=$!
	PIDS+=("$FPID")
	wait_port "$HPORT"
	wait_port "$FPORT"
}

# run NAME SRC [herald-bench flags...]: one scenario on fresh servers, from
# source addresses starting at SRC (a new range per run, so no run meets
# the previous one's TIME_WAIT sockets).
run() {
	local name=$1 src=$2
	shift 2
	echo "=== $name" >&2
	start_servers
	local floor=(--compare-floor "127.0.0.1:$FPORT" --floor-pid "$FPID")
	if [[ "${NOFLOOR:-}" == 1 ]]; then floor=(); fi
	"$BIN/herald-bench" --label "$name" --target "127.0.0.1:$HPORT" --pid "$HPID" "${floor[@]}" \
		--secret "$SECRET" --api-key "$APIKEY" --src "$src" \
		--out "$OUT/$name.json" --html "$OUT/$name.html" "$@" | tee -a "$OUT/summary.txt"
	stop_all
}

run idle 127.0.1.2 --scenario idle --ws "$WS" --sse "$SSE" --duration 10s --settle 5s
# Publishing runs keep the receivers in a worker process (--workers 1): the
# publisher then measures the publish API as a backend process sees it, not
# through its own 10,000 receiving goroutines' run queue (which added up to
# 120 ms to the publish call's p99 at 20 msgs/s on this machine).
run broadcast-1 127.0.2.2 --scenario broadcast --ws "$WS" --broadcast-rate 1 --duration "$DURATION" --workers 1
# At 20 msgs/s the floor without batching falls behind by design: compare
# with the floor whose per-connection queue sends what is pending in one write.
FLOOR_COALESCE=64 run broadcast-20 127.0.3.2 --scenario broadcast --ws "$WS" --broadcast-rate 20 --duration "$DURATION" --workers 1
# The same with the Redis broker (one shard): publishing returns after the
# script, delivery runs on the shard's subscriber.
BROKER=redis FLOOR_COALESCE=64 run broadcast-20-redis 127.0.6.2 --scenario broadcast --ws "$WS" --broadcast-rate 20 \
	--duration "$DURATION" --workers 1
run per-user-1000 127.0.4.2 --scenario per-user --ws "$WS" --user-rate 1000 --duration "$DURATION" --workers 1
NOFLOOR=1 run resume 127.0.5.2 --scenario resume --ws 3000 --sse 1000 --broadcast-rate 5 --user-rate 200 \
	--drop-rate 200 --duration "$DURATION"
"$BIN/herald-bench" report --html "$OUT/index.html" "$OUT"/idle.json "$OUT"/broadcast-1.json "$OUT"/broadcast-20.json "$OUT"/broadcast-20-redis.json \
	"$OUT"/per-user-1000.json "$OUT"/resume.json
echo "report: $OUT/index.html" >&2
