#!/usr/bin/env bash
# Tools that check leaktrace's outputs and deploy files with the real thing
# (issue 14): promtool (Debian's prometheus) runs deploy/prometheus's rule
# tests, amtool and Alertmanager (prometheus-alertmanager) the inhibit
# example, actionlint the GitHub Actions workflow in docs/ci.md. Idempotent:
# a rerun with everything present does nothing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
command -v promtool >/dev/null || need+=(prometheus)
{ command -v amtool >/dev/null && command -v prometheus-alertmanager >/dev/null; } || need+=(prometheus-alertmanager)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# The packages start their daemons; CI wants only the binaries.
	systemctl disable --now prometheus prometheus-alertmanager prometheus-node-exporter >/dev/null 2>&1 || true
fi

# actionlint, pinned, built once into a cache outside the repo
# (cmd/leaktrace's TestWorkflowExamples looks for it there).
cache=/var/cache/leaktrace-trust
version=v1.7.12
if [ "$("$cache/bin/actionlint" -version 2>/dev/null | head -1)" != "$version" ]; then
	mkdir -p "$cache/bin"
	GOBIN="$cache/bin" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
fi
