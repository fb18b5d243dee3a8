#!/usr/bin/env bash
# PostgreSQL for hooksmith's tests.
#
#   bash .ci/postgres.sh install        # install the Debian postgresql package if initdb is missing
#   eval "$(bash .ci/postgres.sh start)" # start a throwaway cluster; exports HOOKSMITH_TEST_DATABASE_URL
#   bash .ci/postgres.sh stop           # stop it and delete its files
#
# CI only needs "install": the tests' harness (internal/pgtest) starts its own throwaway
# cluster from these binaries when HOOKSMITH_TEST_DATABASE_URL is unset, and fails (never
# skips) under CI=true when it cannot. "start" is for running the tests against one shared
# server, or for poking at it with psql. Extra server settings: PG_OPTS="-c work_mem=64MB".
set -euo pipefail

state_file="${TMPDIR:-/tmp}/hooksmith-postgres.state"

bindir() {
	if command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return
	fi
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -n 1
}

install() {
	local dir
	dir="$(bindir)"
	if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
		echo "postgresql: found $("$dir/postgres" --version)" >&2
		return
	fi
	echo "postgresql: installing the Debian package" >&2
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
	# The package may start a system cluster; the tests do not use it.
	dir="$(bindir)"
	[ -x "$dir/initdb" ] || { echo "postgresql: initdb still missing after install" >&2; exit 1; }
}

start() {
	install
	local dir bin port run=()
	bin="$(bindir)"
	dir="$(mktemp -d "${TMPDIR:-/tmp}/hooksmith-pg.XXXXXX")"
	if [ "$(id -u)" -eq 0 ]; then
		# PostgreSQL refuses to run as root.
		local user=postgres
		id "$user" >/dev/null 2>&1 || user=nobody
		chown "$user" "$dir"
		run=(runuser -u "$user" --)
	fi
	port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 54329)"
	"${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	"${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
		-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 ${PG_OPTS:-}" >&2 ||
		{ cat "$dir/postgres.log" >&2; exit 1; }
	printf '%s\n%s\n' "$dir" "$bin" >"$state_file"
	echo "export HOOKSMITH_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
}

stop() {
	[ -f "$state_file" ] || { echo "postgresql: nothing to stop" >&2; return; }
	local dir bin run=()
	{ read -r dir; read -r bin; } <"$state_file"
	[ "$(id -u)" -eq 0 ] && run=(runuser -u "$(stat -c %U "$dir")" --)
	"${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
	rm -rf "$dir" "$state_file"
}

case "${1:-}" in
install | start | stop) "$1" ;;
*)
	echo "usage: $0 install|start|stop" >&2
	exit 2
	;;
esac
