#!/usr/bin/env bash
# Setup for `make vmtest` (the kernel matrix, run by .ci/run after `make test`):
# QEMU, a static libc for the test programs, cpio for vmtest's own test, and
# the pinned Debian kernels fetched once into /var/cache/leaktrace-vmtest
# through vmtest's private apt configuration (the host's apt is not changed).
# Idempotent; a second run installs and downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v dpkg-deb >/dev/null || need+=(dpkg)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

go run ./vmtest -fetch-only
