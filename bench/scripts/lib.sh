# Shared helpers of the herald-bench scripts (sourced, not run).
# Every process started here is remembered and stopped by its pid.

BIN=${BIN:-bin}
OUT=${OUT:-bench/out}
GO=${GO:-go}
mkdir -p "$BIN" "$OUT"

build() {
	"$GO" build -o "$BIN/herald" ./cmd/herald
	"$GO" build -o "$BIN/herald-bench" ./cmd/herald-bench
	"$GO" build -o "$BIN/herald-floor" ./cmd/herald-floor
}

# wait_port PORT: wait until something accepts on 127.0.0.1:PORT.
wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# port_free PORT: fail when the port is taken (by someone else's run).
port_free() {
	if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
		echo "port $1 is already in use; set another (see the script's variables)" >&2
		return 1
	fi
}

PIDS=()
# stop_all: stop every process this script started, by pid, newest first
# (Herald nodes before the Redis servers they use).
stop_all() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[i]}" 2>/dev/null || true
		wait "${PIDS[i]}" 2>/dev/null || true
	done
	PIDS=()
}
trap stop_all EXIT
