#!/usr/bin/env bash
# Debian roots with newer CPythons than the host's, for the Python integration
# tests: forky (3.14) and trixie (3.13), made with debootstrap (about 4 minutes
# and 260 MB each, once) and cached under /var/cache/leaktrace-py/. The host's
# apt sources are never touched: debootstrap fetches from the mirror itself.
# Idempotent: a root is made only when its stamp is missing.
set -euo pipefail

cache=${LEAKTRACE_PY_ROOTS:-/var/cache/leaktrace-py}
mirror=${LEAKTRACE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suites=${LEAKTRACE_PY_SUITES:-forky trixie}

if ! command -v debootstrap >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
mkdir -p "$cache"
# make_root SUITE: one root; the suites are made side by side (the time is
# mostly waiting on the mirror).
make_root() {
	local suite=$1 root=$cache/$1 script
	# forky is too new for bookworm's debootstrap to know: sid's script works.
	script=/usr/share/debootstrap/scripts/$suite
	[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
	rm -rf "$root.tmp"
	echo "python root $suite: debootstrap into $root (a few minutes, once)"
	debootstrap --variant=minbase --include=python3 "$suite" "$root.tmp" "$mirror" "$script" \
		>"$cache/$suite.log" 2>&1 || { tail -20 "$cache/$suite.log"; exit 1; }
	# Apt's package cache is not needed to run the interpreter.
	rm -rf "$root.tmp/var/cache/apt/archives/"*.deb "$root.tmp/var/lib/apt/lists/"*
	chroot "$root.tmp" /usr/bin/python3 -c 'import sys; print(sys.version.split()[0])' >"$root.tmp/.leaktrace-ready"
	rm -rf "$root"
	mv "$root.tmp" "$root"
	echo "python root $suite: ready, python $(cat "$root/.leaktrace-ready")"
}
pids=()
for suite in $suites; do
	if [ -f "$cache/$suite/.leaktrace-ready" ]; then
		echo "python root $suite: cached at $cache/$suite ($(cat "$cache/$suite/.leaktrace-ready"))"
		continue
	fi
	make_root "$suite" &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait "$pid"
done
