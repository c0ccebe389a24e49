#!/bin/sh
# make-bundle.sh BUILD [DEST] — the binaries bench/gpu/check-and-time.sh
# needs on a GPU machine that cannot build the project (no autotools, no MPI
# headers): pipec and the two runtime libraries of a configured build tree
# BUILD, into DEST (default build-gpu in the source tree, which .gitignore's
# /build*/ keeps out of commits).  Carry DEST to the machine.  The machine
# must be x86-64 like this one; it needs gcc, mpirun, a CBLAS, CUDA 13's
# libraries and NCCL (bench/gpu/env.sh finds them, and can unpack an Open
# MPI and an OpenBLAS from DEST/ompi5.tar.xz and DEST/blas.tar.xz).
set -eu
build=${1:?usage: make-bundle.sh BUILD [DEST]}
src=$(cd "$(dirname "$0")/../.." && pwd)
dest=${2:-$src/build-gpu}
for f in compiler/pipec runtime/libpipert.a runtime/libpipert_cuda.a; do
	[ -f "$build/$f" ] || { echo "make-bundle.sh: no $build/$f (make in $build first)" >&2; exit 1; }
done
mkdir -p "$dest/bin" "$dest/lib"
cp "$build/compiler/pipec" "$dest/bin/"
cp "$build/runtime/libpipert.a" "$build/runtime/libpipert_cuda.a" "$dest/lib/"
echo "make-bundle.sh: $dest: $(du -sh "$dest" | cut -f1)"
