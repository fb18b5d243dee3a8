#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: the internal/bench program (throughput against the ceiling
# and naive modes, then the backlog, hol and send-latency scenarios, each its own process)
# and the root package's go test micro-benchmarks. About 2 to 3 minutes on 2 cores.
#
#   scripts/bench.sh                      # defaults below
#   ROUNDS=5 ROUND_DURATION=3s WORKERS=64 scripts/bench.sh
#
# Raw outputs stay in bench-out/ (git-ignored). A failing step is reported, the others
# still run, BENCHMARKS.md shows it as "not run", and the script exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

DURATION="${DURATION:-3s}"            # each scenario's measured window
ROUND_DURATION="${ROUND_DURATION:-1.5s}" # each throughput mode's window, per round
ROUNDS="${ROUNDS:-3}"
WORKERS="${WORKERS:-8,16,64}"
PAYLOAD="${PAYLOAD:-200}"
BENCHTIME="${BENCHTIME:-0.3s}"
OUT=bench-out

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/gobench.txt
go build -o "$OUT/bench" ./internal/bench || exit 1

failed=0
step() { # step NAME COMMAND...: runs COMMAND with stdout to $OUT/NAME
	local name=$1; shift
	echo "== $name" >&2
	if ! "$@" >"$OUT/$name.tmp"; then
		echo "bench.sh: $name failed" >&2
		rm -f "$OUT/$name.tmp"
		failed=1
		return
	fi
	mv "$OUT/$name.tmp" "$OUT/$name"
}

common=(-json -payload "$PAYLOAD")
step throughput.json "$OUT/bench" "${common[@]}" -duration "$ROUND_DURATION" -rounds "$ROUNDS" -workers "$WORKERS"
common+=(-duration "$DURATION")
step backlog.json "$OUT/bench" "${common[@]}" -workers 64 -scenario backlog
step hol.json "$OUT/bench" "${common[@]}" -workers 64 -scenario hol
step send-latency.json "$OUT/bench" "${common[@]}" -workers 64 -scenario send-latency
step gobench.txt go test -run '^$' -bench '^Benchmark(Sign|Envelope|SendEnqueue|Scheduler)$' \
	-benchmem -benchtime "$BENCHTIME" -count 3 .

"$OUT/bench" -render "$OUT" -o BENCHMARKS.md || exit 1
echo "wrote BENCHMARKS.md" >&2
exit "$failed"
