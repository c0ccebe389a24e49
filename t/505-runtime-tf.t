#!/bin/sh
# The transformer kernels (runtime/rt_tf.c) against the float64 numpy
# reference t/ref/tf_ref.py, forward and every gradient, after the
# reference's own backward has been checked by finite differences.
# t/runtime-tf.c runs the kernels and checks what needs no reference (the
# zero-bubble split bit for bit, inference against training, the planned
# buffer sizes); tf_ref.py writes its inputs, reads its outputs and speaks
# the TAP.
. "$(dirname "$0")/runtime-lib.sh"
"$PYTHON" -c 'import numpy' 2>/dev/null || {
	echo "1..0 # SKIP $PYTHON has no numpy"
	exit 0
}
cc_test "$T/tf" "$rt_top/t/runtime-tf.c"
exec "$PYTHON" "$rt_top/t/ref/tf_ref.py" check "$T/tf" "$T/cases"
