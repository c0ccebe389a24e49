#!/bin/sh
# The runtime's kernels, optimizers and initialiser against double-precision
# references and finite differences (t/runtime-kernels.c).
. "$(dirname "$0")/runtime-lib.sh"
cc_test "$T/kernels" "$rt_top/t/runtime-kernels.c"
exec "$T/kernels"
