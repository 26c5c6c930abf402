# Shared by the bench scripts (sourced, not run): build liftoff in release, a work dir
# removed on exit, processes started by the script stopped by PID, and port helpers.
# After sourcing: $LIFTOFF (the binary), $work, pids+=($!) to have a process stopped.

echo "building liftoff (release)..." >&2
cargo build --release --locked -p liftoff >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
LIFTOFF="$target_dir/release/liftoff"

work=$(mktemp -d "/tmp/liftoff-${BENCH_NAME:-bench}.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

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
