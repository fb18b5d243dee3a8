#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: the bench program's paired, backlog, head-of-line and stores
# scenarios (each its own process) and the root package's go test micro-benchmarks. About
# 30 minutes on 2 cores, most of it the paired step.
#
#   scripts/bench.sh                       # everything
#   CYCLES=60 WORKERS=64 scripts/bench.sh  # a shorter paired step
#   ONLY=stores scripts/bench.sh           # one step (paired, backlog, hol, stores, gobench);
#                                          # the others' earlier outputs in bench-out/ are rendered as they are
#
# The stores scenario compares the memory, file and PostgreSQL stores. PostgreSQL is
# $HOOKSMITH_TEST_DATABASE_URL when set; otherwise a throwaway cluster started here with
# .ci/postgres.sh, made durable (fsync, synchronous_commit and full_page_writes on, unlike
# the tests' cluster), and stopped on exit. If it cannot start, the scenario skips it.
#
# Raw outputs stay in bench-out/ (git-ignored). A failing step is reported, the others
# still run, BENCHMARKS.md shows it as "not run", and the script exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

DURATION="${DURATION:-3s}"       # each measured window of the backlog and stores scenarios
BACKLOG_ROUNDS="${BACKLOG_ROUNDS:-3}" # a backlog round is about a minute; one drain swings by half
CYCLES="${CYCLES:-200}"          # paired cycles per worker count, about 1.5 s each
HOL_CYCLES="${HOL_CYCLES:-40}"   # the hol step's paired cycles, about 0.8 s each
WORKERS="${WORKERS:-8,16,64}"
PAYLOAD="${PAYLOAD:-200}"
BENCHTIME="${BENCHTIME:-0.3s}"
OUT="$PWD/bench-out"
STORE_DIR="${STORE_DIR:-${TMPDIR:-/tmp}}" # the file store's directory: a real disk, fsync on
ONLY="${ONLY:-}"

mkdir -p "$OUT"
if [ -n "$ONLY" ]; then
	rm -f "$OUT/$ONLY".json "$OUT/$ONLY".txt
else
	rm -f "$OUT"/*.json "$OUT"/gobench.txt
fi
(cd bench && go build -o "$OUT/bench" .) || exit 1

failed=0
step() { # step NAME COMMAND...: runs COMMAND with stdout to $OUT/NAME
	local name=$1; shift
	if [ -n "$ONLY" ] && [ "$ONLY" != "${name%.*}" ]; then return; fi
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
step paired.json "$OUT/bench" "${common[@]}" -scenario paired -cycles "$CYCLES" -workers "$WORKERS" \
	-modes ceiling,ceiling-headers,naive,hooksmith,hooksmith-full
common+=(-duration "$DURATION")
step backlog.json "$OUT/bench" "${common[@]}" -workers 64 -scenario backlog -rounds "$BACKLOG_ROUNDS"
step hol.json "$OUT/bench" "${common[@]}" -workers 64 -scenario hol -hol-cycles "$HOL_CYCLES"

pg_dir=""
stop_pg() {
	if [ -n "$pg_dir" ]; then
		bash .ci/postgres.sh stop "$pg_dir"
		pg_dir=""
	fi
}
if [ -z "$ONLY" ] || [ "$ONLY" = stores ]; then
	if [ -z "${HOOKSMITH_TEST_DATABASE_URL:-}" ]; then
		trap stop_pg EXIT
		trap 'exit 130' INT TERM
		echo "== starting PostgreSQL" >&2
		# The last -c of a setting wins: durable, whatever postgres.sh defaults to.
		if pg_env="$(PG_OPTS="-c fsync=on -c synchronous_commit=on -c full_page_writes=on ${PG_OPTS:-}" bash .ci/postgres.sh start)"; then
			eval "$pg_env"
			pg_dir="$HOOKSMITH_PG_DIR"
		else
			echo "bench.sh: PostgreSQL did not start; the stores scenario skips it" >&2
		fi
	fi
	step stores.json "$OUT/bench" "${common[@]}" -workers 64 -callers 64 -scenario stores -store-dir "$STORE_DIR"
	stop_pg
fi

step gobench.txt go test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" -count 3 .

"$OUT/bench" -render "$OUT" -o BENCHMARKS.md || exit 1
echo "wrote BENCHMARKS.md" >&2
exit "$failed"
