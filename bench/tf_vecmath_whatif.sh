#!/bin/sh
# bench/tf_vecmath_whatif.sh [ROUNDS] — a diagnosis, not a fix: what building the runtime's
# elementwise kernels for this machine's vector units would add.
#
# History: before commit 895affe, perf showed glibc's scalar tanhf (with its expm1f)
# at about a third of a GPT-2 training step (rt_gelu_tanh_fwd/bwd) and erff + expf
# (rt_gelu_fwd, the softmax) at about a third of a MiniLM forward: glibc >= 2.35
# ships vector variants of all three in libmvec, but math.h declares them only
# under __FAST_MATH__.  This script found them worth 1.2-1.7x, and 895affe made
# runtime/rt_math.h declare them, so the runtime as built (baseline x86-64, no
# -march) now calls the 4-wide SSE variants (_ZGVbN4v_*).
#
# What it measures now (bench/transformers-notes.md): it rebuilds rt_kernels.c,
# rt_tf.c and rt_tf_cpu.c in a scratch copy of the runtime with -march=native ("arch": the
# same rt_math.h declarations, so the 8-wide AVX2 variants on an AVX2 machine)
# and with -march=native -D__FAST_MATH__ ("vec": glibc's own declarations, for
# which rt_math.h's step aside; -D__FAST_MATH__ only, no -ffast-math, so no
# reassociation or finite-math assumptions), swaps them into copies of
# libpipert.a, links the same programs against them (+ -lmvec), and times the
# runtime as built ("base") and the two patched programs alternately.  Nothing
# in the source tree or build/ changes.  Needs the inputs exp_gpt_train.py and
# exp_minilm.py left in build/bench-work.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
work=${WORK:-$top/build/bench-work/vecmath}
bw=$top/build/bench-work
export PIPEC_PKGDATADIR=$top/templates PIPEC_RUNTIME_INCLUDE=$top/runtime
export PIPEC_RUNTIME_LIB=$top/build/runtime OPENBLAS_NUM_THREADS=1
rm -rf "$work"
mkdir -p "$work/rt"
cp "$top"/runtime/*.c "$top"/runtime/*.h "$work/rt/"
mpi=$(mpicc --showme:compile 2>/dev/null || echo "-I/usr/lib/x86_64-linux-gnu/openmpi/include")
# arch: -march=native (rt_math.h's declarations, wider variants); vec: + glibc's declarations.
for v in arch vec; do
	mkdir -p "$work/$v"
	cp "$top/build/runtime/libpipert.a" "$work/$v/"
	extra=-march=native
	[ $v = vec ] && extra="-march=native -D__FAST_MATH__"
	for f in rt_kernels rt_tf rt_tf_cpu; do
		gcc -DHAVE_CONFIG_H -I"$top/build" -I"$work/rt" $mpi -g -O2 -fvect-cost-model=dynamic \
			-fno-math-errno $extra -c "$work/rt/$f.c" -o "$work/$v/libpipert_a-$f.o"
	done
	ar r "$work/$v/libpipert.a" "$work/$v/libpipert_a-rt_kernels.o" "$work/$v/libpipert_a-rt_tf.o" \
		"$work/$v/libpipert_a-rt_tf_cpu.o"
	echo "$v: vector calls in the kernels:" \
		$(nm "$work/$v"/libpipert_a-rt_*.o | grep -o '_ZGV[a-zA-Z0-9_]*' | sort -u)
done

# name : model : stages : microbatches : extra sets : run arguments
m=$(sh "$top/scripts/minilm-fetch.sh" 2>/dev/null || true)
cases="gpt-mid-P1:bench/models/gpt-train-mid.pipe:1:1::--weights-in $bw/gpt_train/gpt-mid-seed1.safetensors --input $bw/gpt_train/gpt-mid-data/ids.npy --steps 6
gpt-mid-P2:bench/models/gpt-train-mid.pipe:2:4::--weights-in $bw/gpt_train/gpt-mid-seed1.safetensors --input $bw/gpt_train/gpt-mid-data/ids.npy --steps 6
char-gpt-P2:models/char-gpt.pipe:2:8::--weights-in $bw/gpt_train/char-gpt-seed1.safetensors --input $bw/gpt_train/char-gpt-data/ids.npy --steps 22
minilm-T128-P1:models/minilm.pipe:1:1:--set batch=64:--weights-in $m/model.safetensors --input ids=$bw/minilm/t128.ids.npy --input mask=$bw/minilm/t128.mask.npy --steps 4
minilm-T128-P2:models/minilm.pipe:2:8:--set batch=64:--weights-in $m/model.safetensors --input ids=$bw/minilm/t128.ids.npy --input mask=$bw/minilm/t128.mask.npy --steps 4"

echo "$cases" | while IFS=: read -r name model P M extra args; do
	for v in base arch vec; do
		d=$work/$name-$v
		"$top/build/compiler/pipec" compile "$top/$model" -o "$d" --set stages=$P \
			--set microbatches=$M $extra >/dev/null
		[ $v != base ] && sed -i "s#-L$top/build/runtime -lpipert#-L$work/$v -lpipert -lmvec#" "$d/Makefile"
		make -s -C "$d"
	done
done

echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-16s %-5s %s\n' case build "step_time per round (s); first and last loss / output"
echo "$cases" | while IFS=: read -r name model P M extra args; do
	for v in base arch vec; do : > "$work/$name-$v.times"; done
	r=0
	while [ $r -lt "$rounds" ]; do
		for v in base arch vec; do
			out=$("$work/$name-$v/run" $args --output "$work/$name-$v.out.npy" 2>/dev/null </dev/null)
			printf '%s ' "$(echo "$out" | sed -n 's/^step_time: //p')" >> "$work/$name-$v.times"
			echo "$out" | sed -n 's/^step [0-9]* loss //p' | sed -n '1p;$p' | tr '\n' ' ' \
				> "$work/$name-$v.loss"
		done
		r=$((r + 1))
	done
	for v in base arch vec; do
		printf '%-16s %-5s %s| %s\n' "$name" $v "$(cat "$work/$name-$v.times")" \
			"$(cat "$work/$name-$v.loss")"
	done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
