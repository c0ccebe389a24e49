# PIPEC_CHECK_NCCL — NCCL headers and library (needs CUDA).
# Sets NCCL_CFLAGS, NCCL_LIBS; AM_CONDITIONAL HAVE_NCCL.
AC_DEFUN([PIPEC_CHECK_NCCL], [
  AC_ARG_WITH([nccl],
    [AS_HELP_STRING([--with-nccl@<:@=DIR@:>@], [NCCL (default: the CUDA toolkit's, or system)])],
    [], [with_nccl=check])
  pipec_have_nccl=no
  NCCL_CFLAGS=; NCCL_LIBS=
  AS_IF([test "x$with_nccl" != xno && test "x$pipec_have_cuda" = xyes], [
    pipec_save_CFLAGS=$CFLAGS; pipec_save_LIBS=$LIBS
    AS_IF([test "x$with_nccl" != xyes && test "x$with_nccl" != xcheck],
          [NCCL_CFLAGS="-I$with_nccl/include"; NCCL_LIBS="-L$with_nccl/lib -Wl,-rpath,$with_nccl/lib"])
    CFLAGS="$CFLAGS $CUDA_CFLAGS $NCCL_CFLAGS"
    LIBS="$NCCL_LIBS -lnccl $CUDA_LIBS $LIBS"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <nccl.h>]], [[ncclUniqueId id; ncclGetUniqueId(&id);]])],
      [pipec_have_nccl=yes; NCCL_LIBS="$NCCL_LIBS -lnccl"])
    CFLAGS=$pipec_save_CFLAGS; LIBS=$pipec_save_LIBS
    AS_IF([test "x$with_nccl" != xcheck && test "x$pipec_have_nccl" != xyes],
          [AC_MSG_ERROR([NCCL requested but nccl.h / libnccl were not found])])])
  AC_SUBST([NCCL_CFLAGS])
  AC_SUBST([NCCL_LIBS])
  AC_DEFINE_UNQUOTED([PIPEC_NCCL_LIBS], ["$NCCL_LIBS"], [NCCL link flags for emitted programs])
  AC_DEFINE_UNQUOTED([PIPEC_NCCL_LIBS], ["$NCCL_LIBS"], [NCCL link flags for emitted programs])
  AM_CONDITIONAL([HAVE_NCCL], [test "x$pipec_have_nccl" = xyes])
])
