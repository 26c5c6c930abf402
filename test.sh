#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts what the tests drive
# (real PostgreSQL, Redis, Prometheus, HAProxy, nginx, Chromium, dockerd and
# docker-compose, the openssl command, Python's aiosmtpd, grpcio, websockets and the
# Prometheus text parser, Node with the OpenFeature SDKs), then runs `cargo test`.
#
#   ./test.sh                     # everything
#   ./test.sh -p liftoff-router   # arguments go to `cargo test`
#   LIFTOFF_TEST_NO_INSTALL=1 ./test.sh   # only check; never install or start
#
# Installing uses apt-get (as root, or through sudo) and pip; a test that still cannot
# find a prerequisite fails naming the command that installs it.
set -euo pipefail
cd "$(dirname "$0")"

if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
apt_updated=
apt_install() {
  if [[ -n ${LIFTOFF_TEST_NO_INSTALL:-} ]]; then
    echo "test.sh: missing $*; install with: apt-get install $*" >&2
    exit 1
  fi
  if [[ -z $apt_updated ]]; then
    "${sudo[@]}" apt-get update -qq
    apt_updated=1
  fi
  echo "test.sh: installing $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
pip_install() {
  python3 -m pip install --quiet "$@" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "$@"
}
have() { command -v "$1" >/dev/null 2>&1; }

# The tests drive real processes: a POSIX shell, curl for raw API calls, python3.
for tool in curl python3; do have "$tool" || apt_install curl python3 python3-pip; done
python3 -c 'import venv' 2>/dev/null || apt_install python3-venv

# PromQL gates run against a real Prometheus, which the tests start on free ports.
have prometheus || apt_install prometheus
# `router: { kind: haproxy }` drives a real HAProxy through its runtime API.
have haproxy || apt_install haproxy
# `router: { kind: nginx }` rewrites an include of a real nginx and reloads it.
have nginx || apt_install nginx-light
# The router's /metrics is checked with the reference Prometheus text parser.
python3 -c 'import prometheus_client' 2>/dev/null || pip_install prometheus-client
# WebSocket clients and servers drive the router's protocol upgrades.
python3 -c 'import websockets' 2>/dev/null || pip_install websockets
# TLS tests make their certificates with the openssl command and drive the router with
# curl and `openssl s_client`.
have openssl || apt_install openssl
# gRPC clients and servers (grpcio) drive the router's HTTP/2 upstreams.
python3 -c 'import grpc' 2>/dev/null || pip_install grpcio
# Notification tests receive email with aiosmtpd.
python3 -c 'import aiosmtpd' 2>/dev/null || pip_install aiosmtpd
# Reports are rendered and screenshotted in headless Chromium.
have chromium || apt_install chromium
# The official OpenFeature providers (PyPI and npm) are tested against `liftoff serve`.
{ have node && have npm; } || apt_install nodejs npm
bash crates/cli/tests/openfeature/setup.sh

# Checklists and migrations use the real PostgreSQL (127.0.0.1:5432, trust auth for
# `postgres`, with pg_dump/pg_restore/psql) and Redis (127.0.0.1:6379).
{ have pg_dump && have pg_ctlcluster; } || apt_install postgresql postgresql-client
have redis-server || apt_install redis-server
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  cluster=$(ls /etc/postgresql | sort -V | tail -1)
  "${sudo[@]}" pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -1)
  "${sudo[@]}" sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  "${sudo[@]}" pg_ctlcluster --skip-systemctl-redirect \
    "$(basename "$(dirname "$(dirname "$hba")")")" main reload
  for _ in $(seq 1 50); do
    psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null
if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  "${sudo[@]}" mkdir -p /var/lib/redis /var/log/redis
  "${sudo[@]}" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG

# deploy/ (crates/cli/tests/deploy_files.rs): systemd-analyze verifies the units; the test
# starts its own dockerd (docker.io) to build deploy/Dockerfile around the liftoff cargo
# builds for the tests, with its loader and libraries (ldd) in the context's rootfs/.
have systemd-analyze || apt_install systemd
{ have dockerd || [[ -x /usr/sbin/dockerd ]]; } || apt_install docker.io
have docker || apt_install docker.io
have file || apt_install file
# `deploy` steps (crates/cli/tests/compose.rs): the same kind of dockerd, docker-compose
# (v1, Debian's) driving it, images FROM scratch of the demo-app (`strip` shrinks them).
have docker-compose || apt_install docker-compose
have strip || apt_install binutils
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || apt_install ca-certificates

exec cargo test --workspace --locked "$@"
