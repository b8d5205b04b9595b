#!/bin/sh
# Issue 14, part 8: single-item scoring on PostgreSQL through nginx in front
# of two `verdict serve` instances (examples/nginx/verdict.conf), against one
# instance alone, with wrk (Debian's package) and bench/single.lua.
# Usage: bench/two-instances.sh [SECONDS] [CONNECTIONS]
# Needs: a release build, PostgreSQL on 127.0.0.1:5432 (database test), nginx, wrk.
set -eu
SECONDS_=${1:-15}
CONNECTIONS=${2:-32}
VERDICT=${VERDICT:-./target/release/verdict}
SCHEMA=bench2i
URL="postgres://127.0.0.1:5432/test?sslmode=disable&options=-csearch_path%3D$SCHEMA"
DIR=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

psql -q -h 127.0.0.1 -d test -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" -c "CREATE SCHEMA $SCHEMA"
start() {
    VERDICT_DATABASE_URL="$URL" VERDICT_PORT=$1 RUST_LOG=warn RAYON_NUM_THREADS=1 \
        "$VERDICT" serve >"$DIR/serve-$1.log" 2>&1 &
    PIDS="$PIDS $!"
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
        sleep 0.1
    done
    echo "instance on $1 did not start"; cat "$DIR/serve-$1.log"; exit 1
}
start 8081
TOKEN=$(grep -o 'vdt_[A-Za-z0-9_-]*' "$DIR/serve-8081.log" | head -1)
start 8082

sed -e "s/listen 80;/listen 127.0.0.1:8080;/" examples/nginx/verdict.conf >"$DIR/site.conf"
cat >"$DIR/nginx.conf" <<EOF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log warn;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $DIR/body; proxy_temp_path $DIR/proxy;
    fastcgi_temp_path $DIR/fastcgi; uwsgi_temp_path $DIR/uwsgi; scgi_temp_path $DIR/scgi;
    include $DIR/site.conf;
}
EOF
nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/error.log"

echo "== one instance directly (c=$CONNECTIONS, ${SECONDS_}s)"
TOKEN=$TOKEN wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_}s" --latency -s bench/single.lua http://127.0.0.1:8081 | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
echo "== two instances through nginx (c=$CONNECTIONS, ${SECONDS_}s)"
TOKEN=$TOKEN wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_}s" --latency -s bench/single.lua http://127.0.0.1:8080 | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
psql -q -h 127.0.0.1 -d test -At -c "SELECT 'items stored: ' || count(*) FROM $SCHEMA.items"
