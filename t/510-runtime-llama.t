#!/bin/sh
# The Llama kernels (runtime/rt_llama.c, rt_llama_cpu.c) against the
# float64 numpy reference t/ref/llama_ref.py, forward, the key/value
# cache and every gradient, after the reference's own backward has been
# checked by finite differences.  t/runtime-llama.c runs the kernels and
# checks what needs no reference (the zero-bubble split bit for bit,
# inference against training, the planned buffer sizes, the caches);
# llama_ref.py writes its inputs, reads its outputs and speaks the TAP.
. "$(dirname "$0")/runtime-lib.sh"
"$PYTHON" -c 'import numpy' 2>/dev/null || {
	echo "1..0 # SKIP $PYTHON has no numpy"
	exit 0
}
cc_test "$T/llama" "$rt_top/t/runtime-llama.c"
exec "$PYTHON" "$rt_top/t/ref/llama_ref.py" check "$T/llama" "$T/cases"
