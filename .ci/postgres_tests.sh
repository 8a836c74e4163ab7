#!/usr/bin/env bash
# The distributed tests against a real PostgreSQL server (tests marked `postgres`): Debian's package,
# a throwaway cluster on a free port in a temporary folder (the machine's own cluster is left alone),
# stopped and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq postgresql >/dev/null
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PORT=${DSPY_META_PG_PORT:-55432}
DATA=$(mktemp -d /tmp/dspy-meta-pg.XXXXXX)
AS=()
if [ "$(id -u)" = 0 ]; then  # initdb and the server refuse to run as root
    chown postgres "$DATA"
    AS=(runuser -u postgres --)
fi
stop() {
    "${AS[@]}" "$BIN/pg_ctl" -D "$DATA/db" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$DATA"
}
trap stop EXIT
"${AS[@]}" "$BIN/initdb" -D "$DATA/db" -U dspy --auth=trust >/dev/null
"${AS[@]}" "$BIN/pg_ctl" -D "$DATA/db" -l "$DATA/server.log" -w \
    -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1" start >/dev/null
"$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U dspy dspy_meta_test
$PYTHON -m pip install -q psycopg2-binary
DSPY_META_TEST_POSTGRES="postgresql+psycopg2://dspy@127.0.0.1:$PORT/dspy_meta_test" $PYTHON -m pytest -q -m postgres
