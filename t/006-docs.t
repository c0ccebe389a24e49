#!/bin/sh
# 006-docs.t — the documentation is self-contained: every markdown link and
# every repository path that README.md, docs/, t/README.md and bench/'s
# notes mention exists in the source tree, and no document or source
# comment refers to specs or notes kept outside the repository
# (t/doc-links.py says exactly what it checks).  Needs no build.
: "${PIPEC_SRC:=$(cd "$(dirname "$0")/.." && pwd)}"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
if [ -z "$PY" ]; then
	echo "1..0 # SKIP no python3"
	exit 0
fi
exec "$PY" "$PIPEC_SRC/t/doc-links.py" "$PIPEC_SRC"
