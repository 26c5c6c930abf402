# Shared by the bench scripts (sourced, not run): build liftoff in release, a work dir
# removed on exit, processes started by the script stopped by PID, and port helpers.
# After sourcing: $LIFTOFF (the binary), $work, pids+=($!) to have a process stopped,
# routers+=(DIR) to have the router running for state dir DIR stopped.
#
# LIFTOFF=/path/to/liftoff skips the build (e.g. a binary built in a target dir of your
# own, CARGO_TARGET_DIR=..., while others edit the tree).

if [ -z "${LIFTOFF:-}" ]; then
  echo "building liftoff (release)..." >&2
  cargo build --release --locked -p liftoff >&2
  target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  LIFTOFF="$target_dir/release/liftoff"
fi

work=$(mktemp -d "/tmp/liftoff-${BENCH_NAME:-bench}.XXXXXX")
pids=()
routers=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # After the daemons: a daemon starts its local router again when it finds it gone.
  for dir in "${routers[@]}"; do stop_router "$dir"; done
  rm -rf "$work"
}
trap cleanup EXIT

# Routers are processes of their own: `liftoff serve --state-dir S` starts one in
# S/router (or adopts the one running there) and leaves it running when it stops, and
# `liftoff router restart` replaces it with a process that is nobody's child. The router
# running for a state dir holds an flock on DIR/lock, which holds its PID.
# router_pid DIR: that PID, or nothing when no router runs there.
router_pid() {
  [ -f "$1/lock" ] || return 0
  flock -n -s "$1/lock" true 2>/dev/null || tr -d '[:space:]' <"$1/lock"
}
# wait_router DIR: until a router runs for DIR (a daemon starting its local router).
wait_router() {
  for _ in $(seq 400); do [ -n "$(router_pid "$1")" ] && return 0; sleep 0.05; done
  echo "no router runs for $1" >&2
  return 1
}
# stop_router DIR: SIGTERM (it drains, at most --drain-timeout, 10 s by default), then
# SIGKILL after 15 s. Follows a successor that takes the lock meanwhile.
stop_router() {
  local pid signalled=
  for _ in $(seq 300); do
    pid=$(router_pid "$1")
    [ -z "$pid" ] && return 0
    if [ "$pid" != "$signalled" ]; then kill "$pid" 2>/dev/null || true; signalled=$pid; fi
    sleep 0.05
  done
  pid=$(router_pid "$1")
  if [ -n "$pid" ]; then
    echo "router $pid ($1) still running after 15 s: SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
}

# A free port on loopback.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Wait until something listens on a loopback port.
wait_port() {
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2
  return 1
}

# The plan every liftoff under test runs: the builtin router on FILE's port, a launch
# holding the 95/5 split in front of the two backends. Arguments: file, router port,
# the two backend ports.
split_plan() {
  cat > "$1" <<CONF
version: 1
name: bench
service: bench
router: { kind: builtin, listen: "127.0.0.1:$2", stable: "http://127.0.0.1:$3", candidate: "http://127.0.0.1:$4" }
steps:
  - traffic: 5%
  - approve: { role: bench }
CONF
}

# The routers' backend: one nginx worker answering a small 200 on two ports (stable and
# candidate). Arguments: the two ports, then an optional launcher (e.g. taskset -c 1).
start_backend() {
  local b1=$1 b2=$2
  shift 2
  mkdir -p "$work/backend"
  cat > "$work/backend/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/backend/nginx.pid;
error_log $work/backend/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$b1; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$b2; location / { return 200 "ok\n"; } }
}
CONF
  "$@" nginx -c "$work/backend/nginx.conf" -p "$work/backend" & pids+=($!)
}
