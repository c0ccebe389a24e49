# PIPEC_CHECK_BLAS — a CBLAS with cblas_sgemm (OpenBLAS preferred).
# Sets BLAS_CFLAGS, BLAS_LIBS; AM_CONDITIONAL HAVE_BLAS.
AC_DEFUN([PIPEC_CHECK_BLAS], [
  AC_ARG_WITH([blas],
    [AS_HELP_STRING([--with-blas=LIBS], [CBLAS link flags (default: openblas, then cblas)])],
    [], [with_blas=check])
  pipec_have_blas=no
  BLAS_CFLAGS=; BLAS_LIBS=
  AS_IF([test "x$with_blas" != xno], [
    pipec_save_LIBS=$LIBS
    AS_IF([test "x$with_blas" != xcheck && test "x$with_blas" != xyes], [
      LIBS="$with_blas $LIBS"
      AC_LINK_IFELSE([AC_LANG_CALL([], [cblas_sgemm])],
                     [pipec_have_blas=yes; BLAS_LIBS=$with_blas])
    ], [
      for pipec_lib in openblas cblas blas; do
        LIBS="-l$pipec_lib $pipec_save_LIBS"
        AC_MSG_CHECKING([for cblas_sgemm in -l$pipec_lib])
        AC_LINK_IFELSE([AC_LANG_CALL([], [cblas_sgemm])],
                       [AC_MSG_RESULT([yes]); pipec_have_blas=yes; BLAS_LIBS=-l$pipec_lib; break],
                       [AC_MSG_RESULT([no])])
      done])
    LIBS=$pipec_save_LIBS
    AS_IF([test "x$pipec_have_blas" = xyes], [AC_CHECK_HEADER([cblas.h], [], [pipec_have_blas=no])])
    AS_IF([test "x$with_blas" != xcheck && test "x$pipec_have_blas" != xyes],
          [AC_MSG_ERROR([a CBLAS was requested but cblas_sgemm/cblas.h were not found])])])
  AC_SUBST([BLAS_CFLAGS])
  AC_SUBST([BLAS_LIBS])
  AC_DEFINE_UNQUOTED([PIPEC_BLAS_LIBS], ["$BLAS_LIBS"], [CBLAS link flags for emitted programs])
  AM_CONDITIONAL([HAVE_BLAS], [test "x$pipec_have_blas" = xyes])
])
