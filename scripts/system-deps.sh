#!/usr/bin/env bash
# Install what the test suite needs from Debian when it is missing: chromium (browser
# tests), a PostgreSQL server with PostGIS (the suite's second database). Needs root/sudo.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pgbin" ]; then
  need+=(postgresql postgresql-postgis)
else
  major=$(basename "$(dirname "$pgbin")")
  ls /usr/share/postgresql/"$major"/extension/postgis.control >/dev/null 2>&1 \
    || need+=("postgresql-$major-postgis-3")
fi
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
