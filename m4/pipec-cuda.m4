# PIPEC_CHECK_CUDA — nvcc, the CUDA runtime and cuBLAS.
# Sets NVCC, CUDA_CFLAGS, CUDA_LIBS; AM_CONDITIONAL HAVE_CUDA.
AC_DEFUN([PIPEC_CHECK_CUDA], [
  AC_ARG_WITH([cuda],
    [AS_HELP_STRING([--with-cuda@<:@=DIR@:>@], [CUDA toolkit (default: /usr/local/cuda if present)])],
    [], [with_cuda=check])
  pipec_have_cuda=no; pipec_have_cublas=no
  CUDA_CFLAGS=; CUDA_LIBS=; NVCC=
  AS_IF([test "x$with_cuda" != xno], [
    AS_IF([test "x$with_cuda" = xyes || test "x$with_cuda" = xcheck],
          [pipec_cuda_dir=/usr/local/cuda], [pipec_cuda_dir=$with_cuda])
    AC_PATH_PROG([NVCC], [nvcc], [], [$pipec_cuda_dir/bin$PATH_SEPARATOR$PATH])
    AS_IF([test -n "$NVCC"], [
      pipec_cuda_lib=$pipec_cuda_dir/lib64
      AS_IF([test -d "$pipec_cuda_dir/targets/x86_64-linux/lib"] && test ! -d "$pipec_cuda_lib",
            [pipec_cuda_lib=$pipec_cuda_dir/targets/x86_64-linux/lib])
      pipec_save_CFLAGS=$CFLAGS; pipec_save_LIBS=$LIBS
      CFLAGS="$CFLAGS -I$pipec_cuda_dir/include"
      LIBS="-L$pipec_cuda_lib -lcudart $LIBS"
      AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <cuda_runtime.h>]], [[int n; cudaGetDeviceCount(&n);]])],
        [pipec_have_cuda=yes
         CUDA_CFLAGS="-I$pipec_cuda_dir/include"
         CUDA_LIBS="-L$pipec_cuda_lib -Wl,-rpath,$pipec_cuda_lib -lcudart"])
      LIBS="-L$pipec_cuda_lib -lcublas -lcudart $pipec_save_LIBS"
      AS_IF([test "x$pipec_have_cuda" = xyes],
        [AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <cublas_v2.h>]], [[cublasHandle_t h; cublasCreate(&h);]])],
          [pipec_have_cublas=yes; CUDA_LIBS="$CUDA_LIBS -lcublas"])])
      CFLAGS=$pipec_save_CFLAGS; LIBS=$pipec_save_LIBS])
    AS_IF([test "x$with_cuda" != xcheck && test "x$pipec_have_cuda" != xyes],
          [AC_MSG_ERROR([CUDA requested but nvcc / libcudart were not found under $pipec_cuda_dir])])])
  AC_SUBST([NVCC])
  AC_SUBST([CUDA_CFLAGS])
  AC_SUBST([CUDA_LIBS])
  AC_DEFINE_UNQUOTED([PIPEC_CUDA_CFLAGS], ["$CUDA_CFLAGS"], [CUDA compile flags for emitted programs])
  AC_DEFINE_UNQUOTED([PIPEC_CUDA_LIBS], ["$CUDA_LIBS"], [CUDA runtime and cuBLAS link flags for emitted programs])
  AC_DEFINE_UNQUOTED([PIPEC_CUDA_CFLAGS], ["$CUDA_CFLAGS"], [CUDA compile flags for emitted programs])
  AC_DEFINE_UNQUOTED([PIPEC_CUDA_LIBS], ["$CUDA_LIBS"], [CUDA link flags for emitted programs])
  AM_CONDITIONAL([HAVE_CUDA], [test "x$pipec_have_cuda" = xyes && test "x$pipec_have_cublas" = xyes])
])
