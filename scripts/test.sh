#!/usr/bin/env bash
# The project's test command (make test): installs the JavaScript peers when
# needed, checks formatting, vets, and runs every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/interop.sh

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './interop/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

go vet ./...
go test -race -count=1 -timeout 20m ./...
