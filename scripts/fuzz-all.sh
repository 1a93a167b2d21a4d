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
		# Quiet when it passes; a failure prints the input and how to rerun it.
		if ! out=$(go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$t" "$pkg" 2>&1); then
			printf '%s\n' "$out" | tail -40
			echo "fuzz-all: $fn in $pkg failed (the input is under $pkg/testdata/fuzz/$fn)" >&2
			exit 1
		fi
	done
done
