#!/bin/sh
# GPT-2 generation's kernels (runtime/rt_tf.c: rt_gpt2_emb_fwd_at,
# rt_gpt2_block_fwd_kv, rt_take_last) against the full-sequence forward
# that t/505-runtime-tf.t checks against transformers' reference: a
# sequence run through the key/value cache in pieces (prefill and decodes)
# must give the full forward's outputs position by position.
# With 16-bit caches (kv_prec) the stores are the rounded keys and values.
# t/runtime-kv.c runs the checks and speaks the TAP; no numpy needed.
. "$(dirname "$0")/runtime-lib.sh"
cc_test "$T/kv" "$rt_top/t/runtime-kv.c"
exec "$T/kv"
