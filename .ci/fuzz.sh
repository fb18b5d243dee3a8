#!/usr/bin/env bash
# Runs each fuzz target briefly, beyond its seed corpus (which `go test` always runs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZTIME:-5s}"
# Each entry is a target of the root package, or package:target.
for entry in FuzzVerify FuzzMatchEventType FuzzParseRetryAfter FuzzEndpointValidation FuzzHexSignerHeader \
	./internal/jsonvalid:FuzzValid; do
	pkg=.; target="$entry"
	if [[ "$entry" == *:* ]]; then pkg="${entry%%:*}"; target="${entry#*:}"; fi
	echo "-- $target in $pkg ($secs)"
	# Brief when it passes; the whole output when it fails, so CI shows why. A failure is
	# run once more: an input that breaks the code was saved under testdata/fuzz and
	# fails again at once as a seed, while a fuzzing-engine hiccup on a loaded machine
	# (one seen, "exit status 1" with no failing input saved) does not.
	if ! out="$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$secs" "$pkg" 2>&1)"; then
		printf '%s\n' "$out"
		echo "-- $target failed; once more"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$secs" "$pkg" 2>&1 | tail -n 20
		continue
	fi
	printf '%s\n' "$out" | tail -n 2
done
