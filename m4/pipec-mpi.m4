# PIPEC_CHECK_MPI — find an MPI C compiler wrapper's flags.
# Sets MPI_CFLAGS, MPI_LIBS, MPIRUN; AM_CONDITIONAL HAVE_MPI.
AC_DEFUN([PIPEC_CHECK_MPI], [
  AC_ARG_WITH([mpi],
    [AS_HELP_STRING([--with-mpi@<:@=MPICC@:>@], [MPI compiler wrapper (default: mpicc if found)])],
    [], [with_mpi=check])
  pipec_have_mpi=no
  MPI_CFLAGS=; MPI_LIBS=; MPICC_SUMMARY=
  AS_IF([test "x$with_mpi" != xno], [
    AS_IF([test "x$with_mpi" = xyes || test "x$with_mpi" = xcheck],
          [AC_PATH_PROG([PIPEC_MPICC], [mpicc])], [PIPEC_MPICC=$with_mpi])
    AS_IF([test -n "$PIPEC_MPICC"], [
      MPI_CFLAGS=`$PIPEC_MPICC --showme:compile 2>/dev/null`
      MPI_LIBS=`$PIPEC_MPICC --showme:link 2>/dev/null`
      AS_IF([test -z "$MPI_LIBS"], [
        MPI_CFLAGS=`$PIPEC_MPICC -compile_info 2>/dev/null | sed 's/^[[^ ]]* //;s/ -c / /'`
        MPI_LIBS=`$PIPEC_MPICC -link_info 2>/dev/null | sed 's/^[[^ ]]* //'`])
      pipec_save_CFLAGS=$CFLAGS; pipec_save_LIBS=$LIBS
      CFLAGS="$CFLAGS $MPI_CFLAGS"; LIBS="$MPI_LIBS $LIBS"
      AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <mpi.h>]], [[MPI_Init(0, 0); MPI_Finalize();]])],
        [pipec_have_mpi=yes; MPICC_SUMMARY="($PIPEC_MPICC)"])
      CFLAGS=$pipec_save_CFLAGS; LIBS=$pipec_save_LIBS])
    AC_PATH_PROGS([MPIRUN], [mpirun mpiexec], [mpirun])
    AS_IF([test "x$with_mpi" != xcheck && test "x$pipec_have_mpi" != xyes],
          [AC_MSG_ERROR([MPI requested but not usable])])])
  AC_SUBST([MPI_CFLAGS])
  AC_SUBST([MPI_LIBS])
  AC_SUBST([MPIRUN])
  AC_DEFINE_UNQUOTED([PIPEC_MPI_CFLAGS], ["$MPI_CFLAGS"], [MPI compile flags for emitted programs])
  AC_DEFINE_UNQUOTED([PIPEC_MPI_LIBS], ["$MPI_LIBS"], [MPI link flags for emitted programs])
  AC_DEFINE_UNQUOTED([PIPEC_MPIRUN], ["$MPIRUN"], [MPI launcher])
  AM_CONDITIONAL([HAVE_MPI], [test "x$pipec_have_mpi" = xyes])
])
