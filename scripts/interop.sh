#!/usr/bin/env bash
# Installs the JavaScript peers the interop tests run against, from the
# committed lockfile, when node_modules is missing or older than the lockfile.
# Without node or npm it fails under CI=true and warns otherwise (the interop
# tests then skip with a message).
set -euo pipefail
cd "$(dirname "$0")/../interop"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "${CI:-}" = "true" ]; then
    echo "interop: node and npm are required under CI" >&2
    exit 1
  fi
  echo "interop: node or npm not found; interop tests will be skipped" >&2
  exit 0
fi

want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.scuttle-lock-sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "interop: npm ci (node $(node --version), npm $(npm --version))" >&2
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
