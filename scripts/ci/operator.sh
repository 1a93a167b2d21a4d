#!/usr/bin/env bash
# The operator's view (issue 15): Debian's chromium for the dashboard's
# browser test (integration/operator_test.go) and promtool for the rules'
# unit tests (agent/promtool_test.go). Idempotent; nothing when present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	# Only promtool is wanted from prometheus: no service may start (it
	# would listen on every interface), so invoke-rc.d is told no meanwhile.
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
	fi
	trap '[ -z "$policy" ] || rm -f "$policy"' EXIT
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
chromium --version 2>/dev/null
promtool --version 2>&1 | head -1
