#!/bin/sh
# 030-cuda-build.t — the CUDA backend cannot rot unnoticed on machines
# without a GPU: for every bundled model (models/*.pipe) and every schedule
# (naive, gpipe, 1f1b, interleaved(2), zb-h1, inference) where the model
# allows it, `pipec compile --backend cuda` emits a directory whose Makefile
# links the ranks against libpipert_cuda.a, and `make` there compiles and
# links every rank; with 1f1b, its rank files are the CPU backend's, byte for
# byte (one step function, one runtime API, two libraries).  Nothing runs: the programs need a GPU
# (bench/gpu/check-and-time.sh runs them where there is one).
#
# Environment (make check sets it): PIPEC, PIPEC_SRC, and
# PIPEC_HAVE_CUDA_RUNTIME ("yes" where configure built libpipert_cuda.a);
# the build tree's pipec finds the templates and the runtime itself.
# Interleaved schedules get partition = auto, since a bundled model's fixed
# partition lists one stage per rank.

src=${PIPEC_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PIPEC=${PIPEC:-$src/compiler/pipec}
lib=${PIPEC_RUNTIME_LIB:-$src/runtime}
T=${PIPEC_TMP:-$PWD/t/tmp}/030-cuda-build
jobs=${PIPEC_MAKE_JOBS:-2}

if [ -n "${PIPEC_HAVE_CUDA_RUNTIME+set}" ]; then
	if [ "$PIPEC_HAVE_CUDA_RUNTIME" != yes ]; then
		echo "1..0 # SKIP libpipert_cuda.a is not built (configure found no CUDA, cuBLAS or NCCL)"
		exit 0
	fi
elif [ ! -f "$lib/libpipert_cuda.a" ]; then
	echo "1..0 # SKIP no libpipert_cuda.a in $lib (configure found no CUDA, cuBLAS or NCCL)"
	exit 0
fi
rm -rf "$T"
mkdir -p "$T"

# An emitter without the CUDA backend says so once: skip, naming it.
if ! "$PIPEC" compile "$src/models/mlp4.pipe" -o "$T/probe" --backend cuda >"$T/probe.log" 2>&1; then
	echo "1..0 # SKIP pipec compile --backend cuda: $(head -1 "$T/probe.log")"
	exit 0
fi

n=0
failed=0
ok() {  # STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}

for model in "$src"/models/*.pipe; do
	m=$(basename "$model" .pipe)
	for sched in naive gpipe 1f1b "interleaved(2)" zb-h1 inference generate; do
		d=$T/$m-$(echo "$sched" | tr -d '()')
		set -- --set "schedule=$sched"
		case $sched in interleaved*) set -- "$@" --set partition=auto ;; esac
		if ! "$PIPEC" compile "$model" -o "$d" --backend cuda "$@" >"$d.log" 2>&1; then
			# pipec refuses combinations the model does not allow (an
			# inference schedule for a model with an optimizer, say)
			if grep -q 'error:' "$d.log"; then
				echo "ok $((n = n + 1)) - $m, $sched # SKIP $(grep -m1 'error:' "$d.log" | sed 's/.*error: //')"
			else
				ok 1 "$m, $sched: pipec compile --backend cuda"
				sed 's/^/# /' "$d.log"
			fi
			continue
		fi
		if ! grep -q -- '-lpipert_cuda' "$d/Makefile"; then
			ok 1 "$m, $sched: the Makefile links libpipert_cuda.a"
			continue
		fi
		# the same program: the step's calls are the CPU backend's
		if [ "$sched" = 1f1b ]; then
			"$PIPEC" compile "$model" -o "$d.cpu" "$@" >/dev/null 2>&1
			same=0
			for f in "$d"/rank*.c; do
				cmp -s "$f" "$d.cpu/$(basename "$f")" || same=1
			done
			ok $same "$m, $sched: the CUDA backend's rank files are the CPU backend's, byte for byte"
		fi
		make -s -C "$d" -j"$jobs" >"$d.make" 2>&1
		rc=$?
		ranks=$(ls "$d"/rank*.c | wc -l)
		built=$(ls "$d"/rank* | grep -c -v '\.c$')
		[ $rc -eq 0 ] && [ "$built" -eq "$ranks" ]
		ok $? "$m, $sched: $ranks CUDA rank programs compile and link"
		[ $rc -eq 0 ] || sed 's/^/# /' "$d.make" | head -20
	done
done
# 16-bit programs (docs/precision.md): the same rank files with rt_round
# calls and RT_PREC_*, linked against the CUDA runtime's rounding kernels;
# and the asynchronous schedules (weight-version slots, two data copies)
for spec in mlp4:1f1b:bf16 deep-narrow:zb-h1:f16 char-gpt:1f1b:bf16 char-gpt-generate:generate:f16 \
    mlp4:pipedream:f32 deep-narrow:pipedream-2bw:bf16; do
	m=${spec%%:*}; rest=${spec#*:}; sched=${rest%%:*}; dt=${rest#*:}
	d=$T/$m-$sched-$dt
	if ! "$PIPEC" compile "$src/models/$m.pipe" -o "$d" --backend cuda --set "schedule=$sched" \
	    --set "dtype=$dt" >"$d.log" 2>&1; then
		ok 1 "$m, $sched, dtype $dt: pipec compile --backend cuda"
		sed 's/^/# /' "$d.log"
		continue
	fi
	prec=$(echo "$dt" | tr a-z A-Z)
	if [ "$dt" = f32 ]; then
		make -s -C "$d" -j"$jobs" >"$d.make" 2>&1 && grep -q "rt_optim_version" "$d"/rank0.c
	else
		make -s -C "$d" -j"$jobs" >"$d.make" 2>&1 && grep -q "RT_PREC_$prec" "$d"/rank0.c \
		    && grep -q 'rt_round(c, ' "$d"/rank0.c
	fi
	ok $? "$m, $sched, dtype $dt: CUDA rank programs compile and link"
	sed 's/^/# /' "$d.make" | head -20
done

echo "1..$n"
exit $failed
