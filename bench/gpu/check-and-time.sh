#!/usr/bin/env bash
# bench/gpu/check-and-time.sh — checks and times pipec's CUDA backend on a
# GPU machine, in one run of under 8 minutes.  Every step is logged; a
# failing step is recorded and the rest go on.
#
#   bench/gpu/check-and-time.sh
#
# Needs: an NVIDIA GPU, CUDA's libraries (cudart, cuBLAS, NCCL: the toolkit's
# or the Python wheels'), gcc, python3 with numpy, and either a configured
# build tree (PIPEC_BUILD) or a bundle of binaries built on another x86-64
# machine (PIPEC_GPU_BUNDLE, default build-gpu: see bench/gpu/env.sh and
# bench/gpu/README.md).  Results: CSV files and logs under $OUT (default
# ./gpu-results), and a table printed last:
#   kernels.tap      every GPU kernel against the CPU kernel (t/runtime-cuda-kernels.c)
#   correctness.csv  every bundled model × schedule, 2 to 4 ranks sharing the
#                    GPU, and one process: losses and trained weights (or
#                    outputs) against the CPU backend's
#   gemm.csv         every linear layer's GEMMs through the runtime against
#                    cuBLAS alone on the same shapes, float32 and TF32
#   graphs.csv       one process, step time and host enqueue time per step,
#                    CUDA graph on and off
#   transport.csv    the shared-device transport (CUDA IPC; host staging)
#                    against cudaMemcpy device to device, by message size
#   throughput.csv   samples/s of the bundled MLP and of a large MLP (hidden
#                    8192), pipelined on the one GPU against one process
#   summary.txt      the table
#   logs.tar.gz      every command's output
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
W=${PIPEC_GPU_WORK:-/tmp/pipec-gpu-check}
rm -rf "$W"
mkdir -p "$W/logs"
t_start=$(date +%s)
cd "$src"

log() { printf '[%s +%ds] %s\n' "$(date +%T)" $(($(date +%s) - t_start)) "$*" | tee -a "$W/logs/steps.log" >&2; }
fails=0
fail() { fails=$((fails + 1)); log "FAILED: $*"; }
PY=${PYTHON:-python3}
$PY -c 'import numpy' 2>/dev/null || PY=/usr/bin/python3

log "environment"
# shellcheck source=env.sh
source "$here/env.sh" || fail "bench/gpu/env.sh found no complete environment (see above)"
gpu_env_report 2>&1 | tee "$W/logs/env.txt"
nvidia-smi >>"$W/logs/env.txt" 2>&1
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)

# ---- helper programs, built here against the runtime ---------------------
log "building the kernel test and the benchmarks"
build_c() {     # OUT SRC [CFLAGS...]
	local o=$1 s=$2
	shift 2
	${CC:-gcc} -std=c11 -O2 -Wall -Wextra "$@" $gpu_cppflags -o "$o" "$s" $gpu_ldlibs \
		>>"$W/logs/build.txt" 2>&1 || { fail "building $s"; return 1; }
}
build_c "$W/kernels" t/runtime-cuda-kernels.c
build_c "$W/gemm-bench" bench/gpu/gemm-bench.c
build_c "$W/xport0" bench/gpu/xport-bench.c -DPRANK=0
build_c "$W/xport1" bench/gpu/xport-bench.c -DPRANK=1

# ---- 1. kernels ------------------------------------------------------------
log "1. kernels against the CPU's"
timeout 120 "$W/kernels" >"$OUT/kernels.tap" 2>&1
rc=$?
case $rc in
0) ;;
77) fail "kernel test: no CUDA device ($(head -1 "$OUT/kernels.tap"))" ;;
*) fail "kernel test (status $rc): $(grep -c '^not ok' "$OUT/kernels.tap") failures" ;;
esac
k_pass=$(grep -c '^ok' "$OUT/kernels.tap")
k_fail=$(grep -c '^not ok' "$OUT/kernels.tap")

# ---- emitting and building programs ----------------------------------------
# emit NAME MODEL [SET...]: DIR/NAME-gpu and DIR/NAME-cpu, the same rank
# files built against libpipert_cuda.a and libpipert.a.
emit() {
	local name=$1 model=$2
	shift 2
	local sets=() s
	for s in "$@"; do sets+=(--set "$s"); done
	local d=$W/$name
	rm -rf "$d-gpu" "$d-cpu"
	if ! "$gpu_pipec" compile "$model" -o "$d-gpu" --backend cuda ${sets[@]+"${sets[@]}"} \
	        >"$W/logs/$name.emit" 2>&1; then
		# a pipec whose emitter does not know --backend cuda yet: the rank
		# files are the same; only the Makefile differs, and gpu_build
		# gives it the CUDA runtime's libraries.
		"$gpu_pipec" compile "$model" -o "$d-gpu" ${sets[@]+"${sets[@]}"} \
			>>"$W/logs/$name.emit" 2>&1 || return 2
	fi
	# Rank files from before rt_loss_ce read every loss on the host, which
	# keeps CUDA graphs off: use the accumulating calls (same arguments).
	if grep -q 'rt_loss_add(c, rt_loss_' "$d-gpu"/rank*.c; then
		sed -i -e 's/rt_loss_add(c, rt_loss_cross_entropy(\(.*\)));$/rt_loss_ce(c, \1);/' \
		       -e 's/rt_loss_add(c, rt_loss_mse(\(.*\)));$/rt_loss_mse_acc(c, \1);/' "$d-gpu"/rank*.c
		echo "note: rank files patched to rt_loss_ce / rt_loss_mse_acc" >>"$W/logs/$name.emit"
	fi
	cp -r "$d-gpu" "$d-cpu"
	rm -f "$d-gpu"/rank? "$d-gpu"/rank?? "$d-cpu"/rank? "$d-cpu"/rank??
	gpu_build "$d-gpu" >>"$W/logs/$name.emit" 2>&1 || return 3
	gpu_build "$d-cpu" cpu >>"$W/logs/$name.emit" 2>&1 || return 4
	return 0
}

# run NAME-SIDE LOGNAME SECONDS ARGS...: the job; its output in logs/LOGNAME.
run() {
	local dir=$1 logname=$2 secs=$3
	shift 3
	timeout "$secs" "$gpu_run" "$W/$dir" --timeout 60 "$@" >"$W/logs/$logname" 2>&1
}

summary_value() { sed -n "s/^$2: //p" "$W/logs/$1" | head -1; }

# max relative difference of two runs' printed losses
loss_diff() {
	$PY - "$W/logs/$1" "$W/logs/$2" <<'PY'
import re, sys
def losses(p):
    return [float(m.group(1)) for m in re.finditer(r"^step \d+ loss (\S+)$", open(p).read(), re.M)]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
if not a or len(a) != len(b):
    print("n/a")
else:
    print("%.3g" % max(abs(x - y) / max(abs(y), 1e-30) for x, y in zip(a, b)))
PY
}

# ---- 2. correctness: every model × schedule, GPU against CPU -----------------
# Tolerances (float32): the GPU's GEMMs sum in another order than OpenBLAS
# (each product within a few 2^-23 · Σ|a||b|, kernels.tap), everything else
# follows the CPU's arithmetic; over a few steps of training that stays
# within 1e-5 of the loss and 1e-4 (relative) + 1e-5 (absolute) of a weight.
log "2. correctness against the CPU backend"
echo "model,variant,schedule,ranks,transport,cuda_graph,loss_rel_diff,weights_or_output,gpu_step_s,cpu_step_s,status" \
	>"$OUT/correctness.csv"
check_one() {   # NAME MODEL SCHEDULE VARIANT [SET...]
	local name=$1 model=$2 sched=$3 variant=$4
	shift 4
	local steps=3 extra=() w="" status=ok
	emit "$name" "$model" "schedule=$sched" "$@"
	case $? in
	0) ;;
	2) echo "$(basename "$model" .pipe),$variant,$sched,,,,,,,,not a valid combination" >>"$OUT/correctness.csv"
	   return ;;
	*) fail "$name: building"; echo "$(basename "$model" .pipe),$variant,$sched,,,,,,,,build failed" >>"$OUT/correctness.csv"
	   return ;;
	esac
	if grep -q 'RT_OPTIM_NONE' "$W/$name-gpu/rank0.c"; then
		extra=(--output "$W/$name.OUT.npy")
	else
		extra=(--weights-out "$W/$name.OUT.safetensors")
	fi
	run "$name-cpu" "$name.cpu" 120 --steps $steps "${extra[@]/OUT/cpu}" || { status="cpu run failed"; fail "$name: CPU run"; }
	run "$name-gpu" "$name.gpu" 120 --steps $steps "${extra[@]/OUT/gpu}" || { status="gpu run failed"; fail "$name: GPU run"; }
	if [ "$status" = ok ]; then
		if [ "${extra[0]}" = --output ]; then
			w=$($PY -c "import numpy as n,sys; a=n.load(sys.argv[1]); b=n.load(sys.argv[2]); print('%.3g' % (abs(a-b).max() / max(abs(b).max(), 1e-30)))" \
				"$W/$name.gpu.npy" "$W/$name.cpu.npy" 2>&1 | tail -1)
			$PY -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 1e-5 else 1)" "$w" 2>/dev/null ||
				{ status="output differs"; fail "$name: output differs by $w"; }
			w="output $w"
		else
			w=$($PY t/ref/pipe_ref.py compare "$W/$name.gpu.safetensors" "$W/$name.cpu.safetensors" \
				--rtol "${CHK_RTOL:-1e-4}" --atol "${CHK_ATOL:-1e-5}" 2>&1 | tail -1) ||
				{ status="weights differ"; fail "$name: $w"; }
		fi
	fi
	local ld
	ld=$(loss_diff "$name.gpu" "$name.cpu")
	case $ld in n/a) ;; *) $PY -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" \
		"$ld" "${CHK_LTOL:-1e-5}" ||
		{ status="losses differ"; fail "$name: losses differ by $ld"; } ;; esac
	echo "$(basename "$model" .pipe),$variant,$sched,$(summary_value "$name.gpu" ranks),$(summary_value "$name.gpu" transport | cut -d' ' -f1),$(summary_value "$name.gpu" cuda_graph | cut -d' ' -f1),$ld,\"$w\",$(summary_value "$name.gpu" step_time),$(summary_value "$name.cpu" step_time),$status" \
		>>"$OUT/correctness.csv"
	log "   $name: $status (losses $ld; $w)"
}
for model in models/*.pipe; do
	m=$(basename "$model" .pipe)
	training=yes
	grep -Eq '^[[:space:]]*optimizer[[:space:]]*=' "$model" || training=no
	for sched in naive gpipe 1f1b "interleaved(2)" zb-h1 inference; do
		[ $training = no ] && [ "$sched" = zb-h1 ] && continue
		[ $training = yes ] && [ "$sched" = inference ] && continue
		[ $training = no ] && [ "$sched" = "interleaved(2)" ] && continue
		s=${sched//[()]/}
		check_one "$m-$s" "$model" "$sched" "as bundled" partition=auto
	done
	# 2 ranks sharing the GPU, and one process (no transport: CUDA graph)
	check_one "$m-p2" "$model" 1f1b "2 ranks" stages=2 partition=auto
	check_one "$m-p1" "$model" 1f1b "1 process" stages=1 partition=auto
done
check_one "mlp4-r2" models/mlp4.pipe 1f1b "2 stages x 2 replicas" stages=2 replicas=2 partition=auto
PIPEC_TRANSPORT=host check_one "mlp4-host" models/mlp4.pipe 1f1b "host staging" 
# asynchronous schedules: version slots on the device, two data copies
check_one "mlp4-pd" models/mlp4.pipe pipedream "pipedream, 4 ranks" microbatches=8
check_one "mlp4-2bw" models/mlp4.pipe pipedream-2bw "pipedream-2bw, 2 ranks" stages=2 partition=auto
# 16-bit programs (docs/precision.md): the same rounding points on both;
# a value near a tie can land one 16-bit step apart when the GEMMs sum in
# another order, so t/044's tolerances against its float64 reference
CHK_LTOL=5e-5 CHK_ATOL=3e-5 check_one "mlp4-bf16" models/mlp4.pipe 1f1b "bf16" dtype=bf16
CHK_LTOL=5e-5 CHK_ATOL=3e-5 check_one "mlp4-f16-p2" models/mlp4.pipe 1f1b "f16, 2 ranks" dtype=f16 \
	stages=2 partition=auto
CHK_LTOL=5e-5 CHK_RTOL=1e-3 CHK_ATOL=1e-4 check_one "deep-narrow-bf16" models/deep-narrow.pipe \
	"interleaved(2)" "bf16, Adam" dtype=bf16 partition=auto
CHK_LTOL=5e-5 CHK_ATOL=3e-5 check_one "mlp4-bf16-pd" models/mlp4.pipe pipedream "bf16 pipedream" \
	dtype=bf16 microbatches=8
log "   transport of the 4-rank run: $(summary_value mlp4-1f1b.gpu transport)"

# ---- a large MLP (hidden 8192) ----------------------------------------------
cat >"$W/mlp-large.pipe" <<'EOF'
# mlp-large.pipe — a wide MLP for GEMM-bound timing (bench/gpu/check-and-time.sh)
model mlp_large {
    input  x : f32[batch, 1024];
    target y : i32[batch];
    layer fc0 : linear(1024, 8192);
    layer act0 : relu;
    layer fc1 : linear(8192, 8192);
    layer act1 : relu;
    layer fc2 : linear(8192, 8192);
    layer act2 : relu;
    layer fc3 : linear(8192, 8192);
    layer act3 : relu;
    layer fc4 : linear(8192, 8192);
    layer act4 : relu;
    layer head : linear(8192, 16);
    loss cross_entropy;
}
pipeline {
    stages       = 4;
    batch        = 1024;
    microbatches = 8;
    schedule     = 1f1b;
    partition    = auto;
    optimizer    = sgd(lr = 0.001, momentum = 0.9);
    steps        = 8;
    seed         = 3;
}
EOF

# ---- 3. GEMMs: every linear layer's shapes, runtime against cuBLAS -----------
log "3. GEMMs against cuBLAS alone"
# shapes as rows,in,out from the emitted rank files (per rank: its stages)
shapes_of() {   # DIR -> "rankN rows,in,out" lines: each rank's linear layers
	$PY - "$1" <<'PY'
import glob, os, re, sys
for f in sorted(glob.glob(os.path.join(sys.argv[1], "rank*.c"))):
    src = open(f).read()
    rows = int(re.search(r"^#define ROWS (\d+)", src, re.M).group(1))
    seen = set()
    for m in re.finditer(r"rt_linear_fwd\([^;]*?, ROWS(?: \* (\d+))?, (\d+), (\d+)\);", src):
        s = "%d,%s,%s" % (rows * int(m.group(1) or 1), m.group(2), m.group(3))
        if s not in seen:
            seen.add(s)
            print(os.path.basename(f)[:-2], s)
PY
}
echo "model,rank,rows,in,out,op,tf32,runtime_us,cublas_us,runtime_tflops,cublas_tflops,runtime_vs_cublas" >"$OUT/gemm.csv"
emit mlpL-p4 "$W/mlp-large.pipe" stages=4 >/dev/null 2>&1 || fail "emitting the large MLP"
for m in mlp4-1f1b mlpL-p4; do
	[ -d "$W/$m-gpu" ] || continue
	shapes_of "$W/$m-gpu" >"$W/$m.shapes"
	for tf in "" --tf32; do
		while read -r rank shape; do
			timeout 60 "$W/gemm-bench" $tf "$shape" 2>>"$W/logs/gemm.txt" | tail -n +2 |
				awk -F, -v m="$m" -v r="$rank" -v t="${tf:+on}" \
				'{printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.3f\n", m, r, $1, $2, $3, $4, t == "" ? "off" : t, $5, $6, $7, $8, $8 > 0 ? $7 / $8 : 0}' \
				>>"$OUT/gemm.csv" || fail "gemm-bench $shape"
		done <"$W/$m.shapes"
	done
done

# ---- 4. CUDA graphs: one process, on and off ------------------------------
log "4. CUDA graph on and off (one process)"
echo "model,cuda_graph,steps,step_time_s,enqueue_per_step_s,enqueue_note" >"$OUT/graphs.csv"
emit mlpL-p1 "$W/mlp-large.pipe" stages=1 >/dev/null 2>&1 || fail "emitting the large MLP (1 stage)"
for m in mlp4-p1 deep-narrow-p1 mlpL-p1; do
	[ -d "$W/$m-gpu" ] || continue
	for g in on off; do
		run "$m-gpu" "$m.graph-$g" 120 --steps 20 --cuda-graph $g || fail "$m --cuda-graph $g"
		if [ $g = on ]; then
			enq=$(summary_value "$m.graph-$g" enqueue_per_step_graph)
		else
			enq=$(summary_value "$m.graph-$g" enqueue_per_step_eager)
		fi
		echo "$m,$(summary_value "$m.graph-$g" cuda_graph | cut -d' ' -f1),20,$(summary_value "$m.graph-$g" step_time),$(echo "$enq" | cut -d' ' -f1),\"$enq\"" >>"$OUT/graphs.csv"
	done
done

# ---- 5. the shared-device transport against cudaMemcpy ------------------------
log "5. transport between two ranks on the GPU"
echo "transport,bytes,one_way_us,GB_per_s,memcpy_us,memcpy_GB_per_s" >"$OUT/transport.csv"
for tr in auto host; do
	PIPEC_TRANSPORT=$tr timeout 120 "$gpu_mpirun_wrap" -np 1 "$W/xport0" --steps 2 --quiet : \
		-np 1 "$W/xport1" --steps 2 --quiet >"$W/logs/xport-$tr.txt" 2>&1 || fail "transport benchmark ($tr)"
	grep -E '^[a-z]+,[0-9]+,' "$W/logs/xport-$tr.txt" | sed "s/^auto,/ipc,/" >>"$OUT/transport.csv"
done

# ---- 6. throughput: pipelined on one GPU against one process ---------------
log "6. samples/s, pipelined against one process"
echo "model,stages,transport,cuda_graph,samples_per_s,step_time_s,vs_one_process" >"$OUT/throughput.csv"
emit mlpL-p2 "$W/mlp-large.pipe" stages=2 >/dev/null 2>&1 || fail "emitting the large MLP (2 stages)"
for m in mlp4 mlpL; do
	base=""
	for p in 1 2 4; do
		d=$m-p$p
		[ $m = mlp4 ] && [ $p = 4 ] && d=mlp4-1f1b
		[ -d "$W/$d-gpu" ] || continue
		run "$d-gpu" "$d.tput" 180 --steps 10 || fail "$d throughput run"
		sps=$(summary_value "$d.tput" samples_per_s)
		[ $p = 1 ] && base=$sps
		rel=$($PY -c "import sys; print('%.3f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$sps" "$base" 2>/dev/null)
		echo "$m,$p,$(summary_value "$d.tput" transport | cut -d' ' -f1),$(summary_value "$d.tput" cuda_graph | cut -d' ' -f1),$sps,$(summary_value "$d.tput" step_time),${rel:-n/a}" >>"$OUT/throughput.csv"
	done
done

# ---- the table ---------------------------------------------------------------
log "done in $(($(date +%s) - t_start)) s, $fails failed steps"
{
	echo "pipec CUDA backend on ${GPU:-an unknown GPU}, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "kernels against the CPU's: $k_pass passed, $k_fail failed"
	echo
	echo "correctness (GPU against CPU backend, 3 steps):"
	column -s, -t <"$OUT/correctness.csv" | cut -c1-170
	echo
	echo "GEMM through the runtime / cuBLAS alone (per stage's shapes; TFLOP/s):"
	awk -F, 'NR > 1 {k = $1 " " $2 " " $7; rt[k] += $8; cb[k] += $9;
		fl[k] += 2 * $3 * $4 * $5 / 1e6}
		END {for (k in rt) printf "  %-22s runtime %7.2f  cuBLAS %7.2f  ratio %.3f\n", k,
			fl[k] / rt[k], fl[k] / cb[k], cb[k] / rt[k]}' "$OUT/gemm.csv" | sort
	echo
	echo "CUDA graphs (one process):"
	column -s, -t <"$OUT/graphs.csv" | cut -c1-150
	echo
	echo "transport (one way) against cudaMemcpy device to device:"
	column -s, -t <"$OUT/transport.csv"
	echo
	echo "throughput:"
	column -s, -t <"$OUT/throughput.csv"
	echo
	echo "failed steps: $fails (see logs/steps.log)"
} >"$OUT/summary.txt"
tar -C "$W" -czf "$OUT/logs.tar.gz" logs
cat "$OUT/summary.txt"
[ $fails -eq 0 ]
