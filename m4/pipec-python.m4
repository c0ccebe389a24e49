# PIPEC_CHECK_PYTHON_NUMPY — a python with numpy, the tests' independent oracle.
# Prefers Debian's /usr/bin/python3 (the python3 on PATH may lack numpy).
AC_DEFUN([PIPEC_CHECK_PYTHON_NUMPY], [
  AC_ARG_VAR([PYTHON_NUMPY], [a python interpreter with numpy, for tests])
  pipec_have_numpy=no
  AS_IF([test -z "$PYTHON_NUMPY"], [
    for pipec_py in /usr/bin/python3 python3 python; do
      AS_IF([$pipec_py -c 'import numpy' >/dev/null 2>&1], [PYTHON_NUMPY=$pipec_py; break])
    done])
  AS_IF([test -n "$PYTHON_NUMPY" && $PYTHON_NUMPY -c 'import numpy' >/dev/null 2>&1],
        [pipec_have_numpy=yes])
  AC_SUBST([PYTHON_NUMPY])
])
