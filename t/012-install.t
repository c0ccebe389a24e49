#!/bin/sh
# 012-install.t — an installed pipec works where it was installed: configure
# the source tree afresh with --prefix in a scratch directory (with this
# build's configure options, less CUDA to keep it short), `make install`,
# then the installed pipec, with no PIPEC_* variable, compiles mlp4 against
# the installed templates, pipert.h and libpipert.a, and the programs build
# and run 2 steps.  A dozen seconds of building here: run where the runtime
# is built (PIPEC_HAVE_RUNTIME), skipped otherwise.
#
# Environment (make check sets it): PIPEC_SRC, PIPEC_BUILD (its
# config.status gives the configure options), PIPEC_HAVE_RUNTIME,
# PIPEC_MAKE_JOBS (make -j, default 2).
. "$(dirname "$0")/lib.sh"

build=${PIPEC_BUILD:-$PIPEC_SRC/build}
jobs=${PIPEC_MAKE_JOBS:-2}
if [ "${PIPEC_HAVE_RUNTIME-yes}" != yes ] || [ ! -f "$build/runtime/libpipert.a" ]; then
	skip_all "the runtime is not built here (needs MPI and a CBLAS)"
fi
[ -x "$PIPEC_SRC/configure" ] || skip_all "no configure in $PIPEC_SRC (autoreconf -fi)"
plan 8

# This build's options (--with-mpi=..., --enable-werror, ...), then ours:
# a later option wins.
opts=$("$build/config.status" --config 2>/dev/null)
pfx=$T/prefix
mkdir "$T/b"
(
	cd "$T/b" &&
	eval "set -- $opts" &&
	"$PIPEC_SRC/configure" --quiet "$@" --prefix="$pfx" --without-cuda &&
	make -s -j"$jobs" install
) >"$T/install.log" 2>&1
rc=$?
is "$rc" 0 "configure --prefix=PREFIX && make install"
[ "$rc" -eq 0 ] || tail -30 "$T/install.log" | diag
[ -x "$pfx/bin/pipec" ] && [ -f "$pfx/share/pipec/templates/rank.c.tmpl" ] &&
	[ -f "$pfx/include/pipert.h" ] && [ -f "$pfx/lib/libpipert.a" ] &&
	[ -x "$pfx/bin/pipert-check" ]
is "$?" 0 "... installs pipec, its templates, pipert.h, libpipert.a and pipert-check under PREFIX"

# The build tree is no help: the installed pipec is another file.
rm -rf "$T/b"
(
	cd "$T" &&
	env -u PIPEC_TEMPLATES -u PIPEC_PKGDATADIR -u PIPEC_RUNTIME_INCLUDE \
		-u PIPEC_RUNTIME_LIB "$pfx/bin/pipec" compile "$PIPEC_SRC/models/mlp4.pipe" -o out
) >"$T/compile.log" 2>&1
rc=$?
is "$rc" 0 "the installed pipec compiles mlp4 with no PIPEC_* variable"
[ "$rc" -eq 0 ] || diag <"$T/compile.log"
# The installed run checks its options with the installed pipert-check,
# before anything is built.
"$T/out/run" --steps 0 >"$T/check.log" 2>&1
rc=$?
is "$rc" 2 "the installed run refuses --steps 0 (exit 2) before building"
[ "$rc" -eq 2 ] || diag <"$T/check.log"
grep -q "$pfx/bin/pipert-check" "$T/out/run" && [ ! -e "$T/out/rank0" ]
is "$?" 0 "... with PREFIX/bin/pipert-check, no rank program built"
mk=$(cat "$T/out/Makefile" 2>/dev/null)
contains "$mk" "-I$pfx/include " "... its Makefile includes PREFIX/include"
contains "$mk" "-L$pfx/lib " "... and links PREFIX/lib"
make -s -C "$T/out" -j"$jobs" >"$T/make.log" 2>&1 &&
	"$T/out/run" --steps 2 >"$T/run.log" 2>&1
rc=$?
if grep -q '^step 2 loss [0-9]' "$T/run.log" && [ "$rc" -eq 0 ]; then
	pass "... and the programs build against the installed runtime and run 2 steps"
else
	fail "... and the programs build against the installed runtime and run 2 steps"
	tail -20 "$T/make.log" "$T/run.log" 2>/dev/null | diag
fi
done_testing
