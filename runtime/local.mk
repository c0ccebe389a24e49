## runtime/local.mk — libpipert.a, the runtime every emitted program links.
## Built only where MPI and a CBLAS are found.

if HAVE_RUNTIME
lib_LIBRARIES += %D%/libpipert.a
include_HEADERS += %D%/pipert.h %D%/pipert_ops.h %D%/rt_tf_sizes.h
%C%_libpipert_a_CPPFLAGS = -I$(srcdir)/%D% $(MPI_CFLAGS) $(BLAS_CFLAGS)
## gcc's -O2 vectorises only loops whose trip count it knows (the
## "very-cheap" cost model); the kernels' loops run over runtime sizes, so
## ask for -O3's model.  An explicit -f option outlives a later -O2 in CFLAGS.
## -fno-math-errno: sqrtf in the Adam loop otherwise keeps errno and stays
## scalar (456 -> 120 us for 203k parameters); the runtime never reads errno
## after math calls.
%C%_libpipert_a_CFLAGS = $(AM_CFLAGS) -fvect-cost-model=dynamic -fno-math-errno
%C%_libpipert_a_SOURCES = \
	%D%/pipert.h %D%/pipert_ops.h %D%/rt_tf_sizes.h %D%/rt_tf_layout.h %D%/rt_small_gemm.h %D%/rt_internal.h %D%/rt_dev.h %D%/rt_math.h \
	%D%/rt_main.c %D%/rt_gen.c %D%/rt_opts.c %D%/rt_comm.c %D%/rt_data.c %D%/rt_init.c \
	%D%/rt_json.c %D%/rt_kernels.c %D%/rt_loss.c %D%/rt_npy.c %D%/rt_optim.c \
	%D%/rt_safetensors.c %D%/rt_trace.c %D%/rt_util.c %D%/rt_weights.c %D%/rt_ckpt.c \
	%D%/rt_dev_cpu.c %D%/rt_tf.c %D%/rt_tf_cpu.c %D%/rt_optim_cpu.c %D%/rt_report.c \
	%D%/rt_eval.c %D%/rt_llama.c %D%/rt_llama_cpu.c
PIPEC_HAVE_RUNTIME = yes

## pipert-check: DIR/run's checks before it builds or starts anything
## (docs/running.md).  The runtime's own option parser and file readers,
## linked from libpipert.a; MPI is linked (the objects name it), never
## started.
bin_PROGRAMS += %D%/pipert-check
%C%_pipert_check_CPPFLAGS = -I$(srcdir)/%D% $(MPI_CFLAGS) $(BLAS_CFLAGS)
%C%_pipert_check_SOURCES = %D%/pipert_check.c %D%/pipert_check.h %D%/pipert_check_data.c \
	%D%/pipert_check_hosts.c %D%/rt_opts_cuda.c
%C%_pipert_check_LDADD = %D%/libpipert.a $(BLAS_LIBS) $(MPI_LIBS) -lm
endif

## Its tests (t/5xx-runtime-*.t) are registered in t/local.mk, with every
## other test.

## The same API on NVIDIA GPUs: libpipert_cuda.a.
include %D%/cuda/local.mk
