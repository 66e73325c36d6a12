#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in a _test.go file) for a while each.
# Usage: scripts/fuzz.sh [duration, default 10s]
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
# at the end of -fuzztime when a worker is starved of CPU (golang/go#75804,
# fixed in Go 1.27): no input failed and none is written. Such a run is
# tried once more; a run that writes a failing input, or fails twice, fails.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}

count() { # files in a folder, 0 when it does not exist
  if [ -d "$1" ]; then ls "$1" | wc -l; else echo 0; fi
}

fuzz_one() { # pkg target
  local pkg=$1 target=$2 out corpus="$1/testdata/fuzz/$2"
  local before
  before=$(count "$corpus")
  out=$(mktemp)
  if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"; then
    rm -f "$out"
    return 0
  fi
  local after
  after=$(count "$corpus")
  if [ "$after" = "$before" ] && grep -q '^    context deadline exceeded$' "$out"; then
    rm -f "$out"
    echo "fuzz: $pkg $target: the coordinator's deadline race (golang/go#75804), no failing input; once more"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
    return
  fi
  rm -f "$out"
  return 1
}

grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' --exclude-dir=interop . | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2 | while read -r target; do
    echo "fuzz: $pkg $target for $fuzztime"
    fuzz_one "$pkg" "$target"
  done
done
