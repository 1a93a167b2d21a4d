#!/usr/bin/env bash
# Real software for the integration suite (integration/realworld_test.go):
# Debian's redis, nginx, PostgreSQL, ab and CPython's own test package. The
# suite starts its own servers on 127.0.0.1 with throwaway configs; the
# packages' own services are not started here. Idempotent: nothing to do
# when everything is installed.
set -euo pipefail

need=()
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || need+=(redis-server redis-tools)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v pgbench >/dev/null || need+=(postgresql)
command -v ab >/dev/null || need+=(apache2-utils)
[ -f /usr/lib/python3.11/test/regrtest.py ] || need+=(libpython3.11-testsuite)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Keep the packages' services from starting (exit 101: "action forbidden"),
# unless the host already has a policy of its own.
policy=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	ours=1
fi
trap '[ "$ours" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
