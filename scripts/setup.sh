#!/bin/sh
# scripts/setup.sh [BUILDDIR [CONFIGURE-OPTION...]] — from a bare checkout to a
# built pipec: install dependencies, bootstrap Autotools, configure out of
# tree in BUILDDIR (default: build), make.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
cd "$top"
sh scripts/install-deps.sh
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi
fi
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ] || [ "$top/configure" -nt config.status ]; then
	"$top/configure" --quiet "$@"
fi
make -s -j"$(nproc 2>/dev/null || echo 2)"
echo "setup: pipec built in $top/$build"
