#!/usr/bin/env bash
# Run the whole suite: every database test on SQLite and, when a PostgreSQL server can be
# started here, on PostgreSQL too (SAFECITY_TEST_POSTGRES_URL). A URL already set is used
# as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SAFECITY_TEST_POSTGRES_URL:-}" ]; then
  if url=$(bash scripts/pg-test-server.sh start); then
    export SAFECITY_TEST_POSTGRES_URL="$url"
    trap 'bash scripts/pg-test-server.sh stop' EXIT
  else
    echo "warning: no PostgreSQL server could be started; PostgreSQL tests will skip" >&2
  fi
fi
.venv/bin/python -m pytest "$@"
