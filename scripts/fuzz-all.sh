#!/usr/bin/env bash
# Runs every go-fuzz target in the repo a number of times each: ./scripts/fuzz-all.sh 200000x
# (a count, not a duration: Go 1.26's time-based -fuzztime can end in a
# spurious 'context deadline exceeded', golang/go#75804).
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-50000x}
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
	pkg=./$(dirname "${f#./}")
	for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
		echo "fuzz $pkg $fn ($t)"
		go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$t" "$pkg" >/dev/null
	done
done
