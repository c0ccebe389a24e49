#!/bin/sh
# scripts/test.sh — the test command (README; CI runs it through .ci/run).
# Sets everything up, then runs the suite twice: a normal build with
# warnings as errors, and a build under AddressSanitizer and
# UndefinedBehaviorSanitizer, then a short fuzzing round of the runtime's
# file readers (make fuzz-smoke).  `scripts/test.sh --full` runs the whole
# matrix (make check-full) instead of the covering subset.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
target=check
[ "${1:-}" = "--full" ] && target=check-full
jobs=$(nproc 2>/dev/null || echo 2)

sh scripts/setup.sh build --enable-werror
make -C build -s -j"$jobs" $target || { cat build/test-suite.log 2>/dev/null | tail -80; exit 1; }

sh scripts/setup.sh build-san --enable-werror --enable-sanitizers
make -C build-san -s -j"$jobs" $target || { cat build-san/test-suite.log 2>/dev/null | tail -80; exit 1; }
# A short round of the file readers' fuzzers (fuzz/README.md): about 20 s
# each over the committed corpus; says SKIPPED where clang is missing.
make -C build-san -s fuzz-smoke
echo "test: all suites passed (normal and sanitizer builds)"
