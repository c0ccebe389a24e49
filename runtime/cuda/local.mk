## runtime/cuda/local.mk — libpipert_cuda.a: pipert.h on NVIDIA GPUs, the
## runtime that `pipec compile --backend cuda` programs link.  Built where
## configure found the CPU runtime's MPI and CBLAS, and nvcc, cuBLAS, NCCL.
##
## The CPU runtime's host modules (options, start-up, data, weights, file
## formats, trace, MPI) are compiled a second time with -DRT_CUDA, which
## routes buffers and steps through the device layer (runtime/rt_dev.h);
## the kernels, optimizers, transport and device layer are CUDA (.cu), and
## the CPU kernels come along as rt_cpu_* for host math and comparisons.
## Rank programs stay C: only this library goes through nvcc.

## The library sits beside libpipert.a (runtime/), so that one -L finds
## either in the build tree as after `make install`.
if HAVE_RUNTIME
if HAVE_CUDA
if HAVE_NCCL
lib_LIBRARIES += runtime/libpipert_cuda.a
runtime_libpipert_cuda_a_CPPFLAGS = -DRT_CUDA -I$(srcdir)/runtime $(MPI_CFLAGS) $(BLAS_CFLAGS)
runtime_libpipert_cuda_a_CFLAGS = $(AM_CFLAGS) -fvect-cost-model=dynamic
runtime_libpipert_cuda_a_SOURCES = \
	runtime/pipert.h runtime/pipert_ops.h runtime/rt_tf_sizes.h runtime/rt_tf_layout.h runtime/rt_small_gemm.h runtime/rt_internal.h runtime/rt_dev.h \
	runtime/rt_math.h runtime/rt_vec.h \
	runtime/rt_main.c runtime/rt_gen.c runtime/rt_opts.c runtime/rt_comm.c runtime/rt_data.c \
	runtime/rt_init.c runtime/rt_json.c runtime/rt_npy.c runtime/rt_safetensors.c \
	runtime/rt_trace.c runtime/rt_util.c runtime/rt_weights.c runtime/rt_ckpt.c runtime/rt_tf.c \
	runtime/rt_llama.c \
	runtime/rt_optim.c runtime/rt_report.c runtime/rt_eval.c \
	%D%/rt_cuda.h %D%/rt_cpu_twins.h %D%/rt_cpu_kernels.h %D%/rt_cpu_kernels.c %D%/rt_cpu_tf.c \
	%D%/rt_cpu_llama.c
## nvcc's objects are added whole: Automake knows no .cu sources.
PIPERT_CUDA_OBJECTS = %D%/rt_cu_base.o %D%/rt_dev_cuda.o %D%/rt_kernels.o %D%/rt_tf.o %D%/rt_llama.o %D%/rt_xport.o \
	%D%/rt_xport_nccl.o %D%/rt_xport_ipc.o %D%/rt_xport_host.o %D%/rt_xport_wait.o
runtime_libpipert_cuda_a_LIBADD = $(PIPERT_CUDA_OBJECTS)
runtime_libpipert_cuda_a_DEPENDENCIES = $(PIPERT_CUDA_OBJECTS)
PIPEC_HAVE_CUDA_RUNTIME = yes
endif
endif
endif

## sm_90 machine code for Hopper, and compute_80 PTX that the driver
## compiles for any later device.  --fmad=false: no multiply-add is
## contracted that the CPU kernels do not contract (rt_kernels.cu).
NVCC_ARCH = -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
NVCC_FLAGS = -std=c++17 -O3 --fmad=false $(NVCC_ARCH) -DRT_CUDA \
	-DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX -Xcompiler -fPIC
PIPERT_CUDA_DEPS = $(srcdir)/%D%/rt_cuda.h $(srcdir)/%D%/rt_reduce.cuh $(srcdir)/%D%/rt_launch.cuh $(srcdir)/%D%/rt_scatter.cuh $(srcdir)/%D%/rt_xport.h $(srcdir)/runtime/rt_internal.h \
	$(srcdir)/runtime/pipert.h $(srcdir)/runtime/pipert_ops.h $(srcdir)/runtime/rt_tf_sizes.h $(srcdir)/runtime/rt_tf_layout.h $(srcdir)/runtime/rt_dev.h \
	$(srcdir)/runtime/rt_math.h

SUFFIXES = .cu
## The host compiler gets the project's warning flags (-Werror included
## with --enable-werror), one -Xcompiler each.
.cu.o:
	$(AM_V_GEN)$(MKDIR_P) $(@D) && \
	$(NVCC) -ccbin $(CC) $(NVCC_FLAGS) \
	  `for f in $(WARN_CFLAGS); do printf ' -Xcompiler %s' $$f; done` \
	  -I$(srcdir)/runtime -I$(srcdir)/%D% $(MPI_CFLAGS) $(CUDA_CFLAGS) $(NCCL_CFLAGS) \
	  -c -o $@ $<
$(PIPERT_CUDA_OBJECTS): $(PIPERT_CUDA_DEPS)

EXTRA_DIST += %D%/rt_cu_base.cu %D%/rt_dev_cuda.cu %D%/rt_kernels.cu %D%/rt_tf.cu %D%/rt_llama.cu %D%/rt_reduce.cuh %D%/rt_launch.cuh %D%/rt_scatter.cuh \
	%D%/rt_xport.h %D%/rt_xport.cu %D%/rt_xport_nccl.cu %D%/rt_xport_ipc.cu %D%/rt_xport_host.cu \
	%D%/rt_xport_wait.cu
CLEANFILES += $(PIPERT_CUDA_OBJECTS)

## Its tests (t/030-cuda-build.t, t/031-cuda-kernels.t) are registered in
## t/local.mk, with every other test.
