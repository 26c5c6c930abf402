#!/bin/sh
# Stand-in for stopping an environment (`docker compose stop`, removing the old Cloud
# Run revision): stops what start-version.sh started as NAME in DIR and waits until it
# is gone.
#
#   stop-version.sh DIR NAME                  e.g. stop-version.sh /var/run/shop blue
#
# Idempotent: a NAME that is not running is a success.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 DIR NAME" >&2
    exit 2
fi
name=$2
pidfile=$1/$name.pid
if [ ! -f "$pidfile" ]; then
    echo "$name is not running"
    exit 0
fi
pid=$(cat "$pidfile")
gone() {
    # A process that exited but was not reaped yet (a zombie) is gone too.
    case $(ps -o stat= -p "$pid" 2>/dev/null || true) in
        '' | Z*) return 0 ;;
        *) return 1 ;;
    esac
}
kill "$pid" 2>/dev/null || true
tries=0
until gone; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ]; then
        echo "$name (pid $pid) did not stop within 10s" >&2
        exit 1
    fi
    sleep 0.1
done
rm -f "$pidfile"
echo "$name stopped (pid $pid)"
