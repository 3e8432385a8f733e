#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the test suite.
#   .ci/postgres.sh start DIR PORT   installs PostgreSQL if missing, starts a cluster in DIR
#   .ci/postgres.sh stop DIR         stops it
#   .ci/postgres.sh run CMD...       runs CMD with DEPUTY_TEST_POSTGRES_URL set to a fresh
#                                    cluster on a free port, then stops and deletes it
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
  dir=$2 port=$3
  bin=$(find_bin)
  if [ -z "$bin" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(find_bin)
  fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  # Durability settings off: the cluster lives for one test run.
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start -o \
    "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir \
     -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
  ;;
stop)
  bin=$(find_bin)
  as_postgres "$bin/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null || true
  ;;
run)
  shift
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  trap '"$0" stop "$dir"; rm -rf "$dir"' EXIT
  "$0" start "$dir" "$port"
  DEPUTY_TEST_POSTGRES_URL="postgresql+asyncpg://postgres@127.0.0.1:$port/postgres" \
    DEPUTY_TEST_POSTGRES_DIR="$dir" "$@"
  ;;
*)
  echo "usage: $0 start DIR PORT | stop DIR | run CMD..." >&2
  exit 2
  ;;
esac
