#!/bin/sh
# Stand-in for `docker compose up -d SERVICE` (or a Vercel / Cloud Run deploy) in the seed
# examples: starts VERSION of the service as a `liftoff demo-app` listening on PORT, in
# the background, and records its PID and log in DIR (NAME.pid, NAME.log) for
# stop-version.sh.
#
#   start-version.sh DIR NAME VERSION PORT    e.g. start-version.sh /var/run/shop green 2.0.0 9001
#
# Idempotent: a NAME already running is left alone. The stand-in's knobs, read from the
# environment (the e2e tests use them to build a bad release): DEMO_ERROR_RATE (share of
# requests answered 500, 0 to 1) and DEMO_LATENCY_MS.
set -eu
if [ $# -ne 4 ]; then
    echo "usage: $0 DIR NAME VERSION PORT" >&2
    exit 2
fi
dir=$1 name=$2 version=$3 port=$4
mkdir -p "$dir"
pidfile=$dir/$name.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$name is already running (pid $(cat "$pidfile"))"
    exit 0
fi
# Its own output goes to a log, so the step that started it does not wait for it.
nohup liftoff demo-app --port "$port" --version "$version" \
    --error-rate "${DEMO_ERROR_RATE:-0}" --latency-ms "${DEMO_LATENCY_MS:-0}" \
    >"$dir/$name.log" 2>&1 </dev/null &
echo $! >"$pidfile"
echo "$name $version starting on port $port (pid $!)"
