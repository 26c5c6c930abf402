#!/usr/bin/env bash
# Installs the official OpenFeature SDKs and OFREP providers that
# crates/cli/tests/flags.rs runs against a real `liftoff serve`:
#   Python: openfeature-sdk + openfeature-provider-ofrep (a venv)
#   Node:   @openfeature/server-sdk + @openfeature/ofrep-provider,
#           @openfeature/web-sdk + @openfeature/ofrep-web-provider
# Usage: setup.sh [DIR]   (default: <workspace>/target/openfeature)
# Idempotent: a second run with the same pinned versions only checks a stamp file.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
dir=${1:-${CARGO_TARGET_DIR:-$root/target}/openfeature}

PY_PACKAGES=(openfeature-sdk==0.10.0 openfeature-provider-ofrep==0.3.0)
NODE_PACKAGES=(
  @openfeature/core@1.12.0
  @openfeature/server-sdk@1.23.0
  @openfeature/ofrep-provider@0.1.3
  @openfeature/web-sdk@1.10.0
  @openfeature/ofrep-web-provider@0.4.3
)
stamp_text="${PY_PACKAGES[*]} ${NODE_PACKAGES[*]}"
stamp="$dir/.installed"

if [[ -f $stamp && $(cat "$stamp") == "$stamp_text" ]]; then
  exit 0
fi

mkdir -p "$dir"
# Python: a venv of its own, so the system's site-packages stay untouched.
if [[ ! -x $dir/venv/bin/python ]]; then
  python3 -m venv "$dir/venv"
fi
"$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"

# Node: a private package directory; the scripts run with NODE_PATH pointing at it.
mkdir -p "$dir/node"
if [[ ! -f $dir/node/package.json ]]; then
  echo '{"name":"liftoff-openfeature-tests","private":true}' > "$dir/node/package.json"
fi
(cd "$dir/node" && npm install --loglevel=error --no-audit --no-fund --save-exact "${NODE_PACKAGES[@]}")

echo "$stamp_text" > "$stamp"
