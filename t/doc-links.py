#!/usr/bin/python3
"""doc-links.py -- the documentation points only at what the repository has.

    python3 t/doc-links.py [TOP]           (TOP: the source tree, default ..)

Checks, and prints one TAP line each (t/006-docs.t runs it):

1. Every markdown link `[text](target)` in the documents (README.md,
   docs/*.md, docs/pipec.1, t/README.md, bench/*.md, bench/gpu/README.md)
   that is not a URL or an anchor names a file or directory that exists,
   relative to the document.
2. Every path those documents mention in the repository's own directories
   (`docs/...`, `t/...`, `compiler/...`, `runtime/...`, `templates/...`,
   `scripts/...`, `models/...`, `bench/...`) exists, relative to the top
   of the tree or to the document (`t/044` is test 044; `t/NNN-what.t`,
   with a placeholder in capitals, is a pattern).  Globs (`t/errors/*.pipe`, `t/5xx-...`), files that the
   build makes (`compiler/pipec`, `runtime/libpipert.a`, `runtime/pipert-check`, `t/front-unit`)
   and what the tests or benchmarks write at run time (`t/tmp/`) are not
   files of the source tree and are let through.
3. Nothing in the documents, nor in the comments of the sources (compiler/,
   runtime/, templates/, scripts/, t/, models/, bench/, configure.ac,
   Makefile.am), refers to a document kept outside the repository: a
   clone has only what is in it, so what a reader needs is said in docs/
   (docs/contributing.md, "Checks before a commit").  FORBIDDEN below
   holds the names such references have taken.

A new document is picked up by the globs above; a new directory of sources
goes into SOURCE_DIRS.
"""
import glob
import os
import re
import sys

DOC_GLOBS = ["README.md", "docs/*.md", "docs/pipec.1", "t/README.md", "bench/*.md",
             "bench/gpu/README.md", "fuzz/README.md"]
SOURCE_DIRS = ["compiler", "runtime", "templates", "scripts", "t", "models", "bench", "fuzz"]
SOURCE_FILES = ["configure.ac", "Makefile.am"]
# This checker and its test name the forbidden words themselves.
SELF = {"t/doc-links.py", "t/006-docs.t"}

FORBIDDEN = re.compile(r"\.\./shared|(?<![\w./-])shared/(?:spec|notes)|(?<![\w-])spec/"
                       r"|(?<![\w-])notes/|(?<![\w./-])(?:cli|pipe-language|training|planner|"
                       r"STYLE|DEVELOPERS)\.md\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w./-])((?:docs|t|compiler|runtime|templates|scripts|models|bench|fuzz)"
                  r"/[\w./{}*+-]*[\w/*}])")

# Build products and run-time outputs: named in the docs, not in the tree.
GENERATED = re.compile(r"^(compiler/pipec|compiler/libpipec\.a|runtime/libpipert(_cuda)?\.a|runtime/pipert-check"
                       r"|t/tmp(/.*)?|bench/results/.*\.(csv|svg|json|log|txt)"
                       r"|runtime/cuda/.*\.o|docs/performance\.md|fuzz/build(/.*)?)$")


def documents(top):
    out = []
    for g in DOC_GLOBS:
        out += sorted(glob.glob(os.path.join(top, g)))
    return out


def sources(top):
    out = [os.path.join(top, f) for f in SOURCE_FILES]
    for d in SOURCE_DIRS:
        for root, dirs, files in os.walk(os.path.join(top, d)):
            # fuzz/corpus holds inputs (binary), fuzz/build the harnesses.
            dirs[:] = [x for x in dirs if x not in ("tmp", "__pycache__", "corpus") and
                       not (d == "fuzz" and x == "build") and not x.startswith(".")]
            for f in files:
                if f.endswith((".c", ".h", ".l", ".y", ".cu", ".sh", ".t", ".py", ".pipe",
                               ".tmpl", ".mk", ".md", ".in", ".1")) or "." not in f:
                    out.append(os.path.join(root, f))
    return sorted(set(out))


def exists_in_tree(top, path, here):
    """A path the documents mention: in the tree (from the top, or from the
    document's directory `here`, as bench/README.md names bench/models/),
    a glob or pattern, a test by its number (`t/044`), or something the
    build or a run makes."""
    p = path.rstrip("/")
    if os.path.exists(os.path.join(here, p)):
        return True
    if re.match(r"^t/\d{3}$", p) and glob.glob(os.path.join(top, p + "-*.t")):
        return True
    if any(c in p for c in "*{}") or re.search(r"\dxx|xx-|/x\.|(?<![A-Za-z])[A-Z]{3,}(?![a-z])", p) \
            and not p.endswith("README.md"):
        return True                                 # a glob, a pattern, a placeholder (t/NNN-what.t)
    if GENERATED.match(p):
        return True
    if os.path.exists(os.path.join(top, p)):
        return True
    # a program built from its .c (t/front-unit from t/front-unit.c)
    if os.path.exists(os.path.join(top, p + ".c")):
        return True
    return False


def main():
    top = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    n = 0
    failed = 0

    def tap(ok, desc):
        nonlocal n, failed
        n += 1
        failed |= not ok
        print("%s %d - %s" % ("ok" if ok else "not ok", n, desc))

    docs = documents(top)
    tap(len(docs) >= 10, "%d documents found" % len(docs))
    for d in docs:
        rel = os.path.relpath(d, top)
        text = open(d, encoding="utf-8", errors="replace").read()
        bad = []
        for m in LINK.finditer(text):
            target = m.group(1).split("#")[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue
            if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(d), target))):
                bad.append("%d: link (%s)" % (text.count("\n", 0, m.start()) + 1, m.group(1)))
        for m in PATH.finditer(text):
            if not exists_in_tree(top, m.group(1), os.path.dirname(d)):
                bad.append("%d: %s" % (text.count("\n", 0, m.start()) + 1, m.group(1)))
        tap(not bad, "%s: every link and path resolves in the tree" % rel)
        for b in bad:
            print("#   %s:%s does not exist" % (rel, b))

    outside = []
    for f in docs + sources(top):
        rel = os.path.relpath(f, top)
        if rel in SELF:
            continue
        try:
            text = open(f, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        for m in FORBIDDEN.finditer(text):
            outside.append("%s:%d: %s" % (rel, text.count("\n", 0, m.start()) + 1, m.group(0)))
    tap(not outside, "no document or comment refers to files outside the repository")
    for o in outside:
        print("#   " + o)
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
