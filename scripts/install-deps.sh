#!/bin/sh
# scripts/install-deps.sh — install what a fresh Debian/Ubuntu machine lacks to
# build and test pipec.  Run as root (or with sudo available); does nothing
# for packages already present.
set -eu

PKGS="build-essential flex bison autoconf automake libtool pkg-config make
      libopenmpi-dev openmpi-bin libopenblas-dev python3 python3-numpy"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && { echo "install-deps: everything is installed"; exit 0; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"
else
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run as root, or install them yourself" >&2
	exit 1
fi
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
