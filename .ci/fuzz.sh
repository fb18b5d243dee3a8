#!/usr/bin/env bash
# Runs each fuzz target briefly, beyond its seed corpus (which `go test` always runs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZTIME:-5s}"
for target in FuzzVerify FuzzMatchEventType FuzzParseRetryAfter FuzzEndpointValidation FuzzHexSignerHeader; do
	echo "-- $target ($secs)"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$secs" . 2>&1 | tail -n 2
done
