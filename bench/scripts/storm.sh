#!/usr/bin/env bash
# make bench-storm: the reconnect storm. Three Herald nodes on three Redis
# shards; every client (WS + SSE, resuming with cursors) on the first node,
# the victim; herald-bench publishes broadcast + per-user messages through
# the two survivors throughout, then signals the victim — SIGTERM in one
# run (Herald drains over server.reconnect_window), SIGKILL in another —
# and the clients reconnect round-robin to the survivors with their last
# cursor. Every run starts on fresh Redis servers and nodes.
# Results: $OUT/storm-term.json/.html, $OUT/storm-kill.json/.html,
# $OUT/storm.html for both and $OUT/storm-summary.txt (with the Redis
# commands per connect and per reconnect, from the shards' commandstats).
# Scale with WS=, SSE= (defaults 12,000 + 6,000: about 18,000 on the victim,
# under its 20,000 open files); SIGNALS="term kill" picks the runs; LOG_LEVEL=info
# keeps the nodes' info lines (shutdown timing) in $OUT/storm-herald-<port>.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/lib.sh

REDIS_PORTS=(${REDIS_PORTS:-7201 7202 7203})
NODE_PORTS=(${NODE_PORTS:-18011 18012 18013})
WS=${WS:-12000}
SSE=${SSE:-6000}
SIGNALS=${SIGNALS:-term kill}
RECONNECT_WINDOW=${RECONNECT_WINDOW:-5s}
SECRET=dev-secret-change-me-0123456789abcdef
APIKEY=dev-api-key-change-me

build
for p in "${REDIS_PORTS[@]}" "${NODE_PORTS[@]}"; do port_free "$p"; done
rm -f "$OUT"/storm-*.json "$OUT"/storm-*.html "$OUT"/storm-*.txt "$OUT"/storm-*.log "$OUT"/storm.html

# run SIGNAL SRC: one storm on fresh Redis servers and nodes, from source
# addresses starting at SRC.
run() {
	local sig=$1 src=$2
	echo "=== storm $sig" >&2
	local shards=""
	for p in "${REDIS_PORTS[@]}"; do
		redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
			--maxclients 10000 >>"$OUT/storm-redis-$p.log" 2>&1 &
		PIDS+=($!)
		shards+="${shards:+,}127.0.0.1:$p"
	done
	for p in "${REDIS_PORTS[@]}"; do wait_port "$p"; done
	local pids=()
	for p in "${NODE_PORTS[@]}"; do
		HERALD_SERVER__LISTEN=127.0.0.1:$p HERALD_LOG__LEVEL=${LOG_LEVEL:-warn} HERALD_DEV__ENABLED=false \
			HERALD_SERVER__RECONNECT_WINDOW=$RECONNECT_WINDOW \
			HERALD_FANOUT__BROKER=redis HERALD_FANOUT__REDIS__SHARDS=$shards \
			"$BIN/herald" --config configs/dev.yaml >>"$OUT/storm-herald-$p.log" 2>&1 &
		PIDS+=($!)
		pids+=($!)
	done
	for p in "${NODE_PORTS[@]}"; do wait_port "$p"; done
	local redis=()
	for p in "${REDIS_PORTS[@]}"; do redis+=(--redis "127.0.0.1:$p"); done
	"$BIN/herald-bench" --label "storm-$sig" --scenario storm --storm-signal "$sig" \
		--target "127.0.0.1:${NODE_PORTS[0]}" --storm-pid "${pids[0]}" \
		--storm-target "127.0.0.1:${NODE_PORTS[1]}" --storm-target "127.0.0.1:${NODE_PORTS[2]}" \
		--pid "${pids[1]}" --pid "${pids[2]}" "${redis[@]}" --ws "$WS" --sse "$SSE" \
		--secret "$SECRET" --api-key "$APIKEY" --src "$src" --settle 5s --drain 20s \
		--reconnect-delay "${RECONNECT_DELAY:-500ms}" "${EXTRA[@]}" \
		--out "$OUT/storm-$sig.json" --html "$OUT/storm-$sig.html" | tee -a "$OUT/storm-summary.txt"
	stop_all
}

EXTRA=(${EXTRA:-})
n=0
for sig in $SIGNALS; do
	n=$((n + 1))
	run "$sig" "127.0.$((20 + n)).2"
done
"$BIN/herald-bench" report --html "$OUT/storm.html" $(for s in $SIGNALS; do echo "$OUT/storm-$s.json"; done)
echo "report: $OUT/storm.html" >&2
