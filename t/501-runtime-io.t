#!/bin/sh
# safetensors and .npy: round trips, accepted forms, malformed files
# (t/runtime-io.c).
. "$(dirname "$0")/runtime-lib.sh"
cc_test "$T/io" "$rt_top/t/runtime-io.c"
exec "$T/io" "$T"
