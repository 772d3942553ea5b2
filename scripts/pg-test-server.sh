#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the test suite, on 127.0.0.1:${PGTEST_PORT:-55432}.
#   start: init (once) and start it, print the SQLAlchemy URL on stdout
#   stop:  stop it
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PGTEST_PORT:-55432}
DIR=$(pwd)/var/pgtest
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$BIN" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
case "${1:-start}" in
  start)
    mkdir -p "$DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"
    if [ ! -f "$DIR/PG_VERSION" ]; then
      as_pg "$BIN/initdb -D '$DIR' -U postgres -A trust --no-sync" >/dev/null
    fi
    if ! as_pg "$BIN/pg_ctl -D '$DIR' status" >/dev/null 2>&1; then
      as_pg "$BIN/pg_ctl -D '$DIR' -l '$DIR/server.log' -w -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" >/dev/null
    fi
    psql -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='safecity_test'" | grep -q 1 \
      || psql -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE safecity_test" >/dev/null
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/safecity_test"
    ;;
  stop)
    as_pg "$BIN/pg_ctl -D '$DIR' -m fast stop" >/dev/null 2>&1 || true
    ;;
esac
