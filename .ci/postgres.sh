#!/usr/bin/env bash
# PostgreSQL for hooksmith's tests.
#
#   bash .ci/postgres.sh install        # install the Debian postgresql package if initdb is missing
#   eval "$(bash .ci/postgres.sh start)" # start a throwaway cluster; exports HOOKSMITH_TEST_DATABASE_URL
#                                        # and HOOKSMITH_PG_DIR, the cluster's own directory
#   bash .ci/postgres.sh stop           # stop the cluster in $HOOKSMITH_PG_DIR and delete its files
#   bash .ci/postgres.sh stop DIR       # stop the cluster in DIR
#
# Each start's state lives in its own directory, so any number of clusters can run at
# once and each stop stops the one it names.
#
# CI only needs "install": the tests' harness (internal/pgtest) starts its own throwaway
# cluster from these binaries when HOOKSMITH_TEST_DATABASE_URL is unset, and fails (never
# skips) under CI=true when it cannot. "start" is for running the tests against one shared
# server, or for poking at it with psql. Extra server settings: PG_OPTS="-c work_mem=64MB".
set -euo pipefail

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
	printf '%s\n' "$bin" >"$dir/bindir"
	echo "export HOOKSMITH_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
	echo "export HOOKSMITH_PG_DIR='$dir'"
}

stop() {
	local dir="${1:-${HOOKSMITH_PG_DIR:-}}" bin run=()
	if [ -z "$dir" ] || [ ! -f "$dir/bindir" ]; then
		echo "postgresql: nothing to stop (name the directory start printed as HOOKSMITH_PG_DIR)" >&2
		return
	fi
	read -r bin <"$dir/bindir"
	[ "$(id -u)" -eq 0 ] && run=(runuser -u "$(stat -c %U "$dir")" --)
	"${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
	rm -rf "$dir"
}

case "${1:-}" in
install | start) "$1" ;;
stop) stop "${2:-}" ;;
*)
	echo "usage: $0 install|start|stop" >&2
	exit 2
	;;
esac
