#!/bin/sh
# scripts/install-deps.sh — install what a fresh Debian/Ubuntu machine lacks to
# build and test pipec.  Run as root (or with sudo available); does nothing
# for packages already present.
set -eu

PKGS="build-essential flex bison autoconf automake libtool pkg-config make
      libopenmpi-dev openmpi-bin libopenblas-dev python3 python3-numpy"
# For `make fuzz-smoke` only (clang's libFuzzer is in libclang-rt-dev on
# Debian 12): installed where the distribution has them, else skipped.
OPT_PKGS="clang libclang-rt-dev"

missing="" opt_missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
for p in $OPT_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		opt_missing="$opt_missing $p"
done
[ -z "$missing$opt_missing" ] && { echo "install-deps: everything is installed"; exit 0; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"
elif [ -z "$missing" ]; then
	echo "install-deps: optional packages missing (make fuzz-smoke will skip):$opt_missing" >&2
	exit 0
else
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run as root, or install them yourself" >&2
	exit 1
fi
$SUDO apt-get update -qq
if [ -n "$missing" ]; then
	echo "install-deps: installing$missing"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
for p in $opt_missing; do
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p" ||
		echo "install-deps: optional package $p not installed (make fuzz-smoke will skip)" >&2
done
