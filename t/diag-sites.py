#!/usr/bin/python3
"""diag-sites.py -- every error message pipec can report against an input
file, and the error case in t/errors/ that shows it.

    python3 t/diag-sites.py SOURCE... -- CASE.pipe...

A SOURCE is a file or a directory; a directory (t/003-errors.t passes
compiler/) stands for every *.c, *.l and *.y in it that reports errors,
found by looking, not from a list, so that a file split out of another one
is covered without touching this script.  (A .c generated next to its .l
or .y by an in-tree build is left out.)

The call sites read are diag_error(...), diag_error_at(...), diag_unknown(...)
(the "unknown KIND 'x'; did you mean ..."), and every function of the
same file that passes its format on to diag_verror -- a printf-like
wrapper declared PRINTF_LIKE, such as sched_read.c's err().  For each site
the format string is taken (adjacent literals joined; both arms of a ?: on
literals), turned into a pattern (%d, %s, ... match anything), and matched
against the `# expect:` lines of the CASEs.  Prints one line per site:

    covered sema.c:123 '%s' takes no arguments    <- errors/no-args.pipe
    missing sema.c:456 a model has at most one loss
    exempt  sched_gen.c:326 interleaved(%d) needs ...    -- WHY

so that a new check without a case in t/errors/ fails t/003-errors.t.
"exempt" is for a message no input can reach (EXEMPT below says why);
keep that list short and its reasons checkable.
"""
import re
import sys

import os

BASE_CALLS = ["diag_error", "diag_error_at", "unknown", "diag_unknown"]
# A printf-like wrapper: `PRINTF_LIKE(n, m) static void NAME(` whose body
# hands its format to diag_verror.
WRAPPER_RE = re.compile(r"PRINTF_LIKE\s*\(\s*\d+\s*,\s*\d+\s*\)\s*(?:static\s+)?(?:inline\s+)?"
                        r"void\s+(\w+)\s*\(")
REPORTS_RE = re.compile(r"\b(diag_error|diag_error_at|diag_verror)\s*\(")

# Messages that no input reaches, with the reason (checked by hand: the
# reason names the check that comes first).  FILE-NAME, a regex on the
# format, why.
EXEMPT = [
    ("sched_gen.c", r"^interleaved\(%d\) needs the number of micro-batches",
     "sema.c refuses M not a multiple of P first (t/errors/interleaved-m-p.pipe); "
     "this guards library callers (t/sched-unit.c)"),
    ("passes.c", r"^the schedule has %d stages, but the pipeline has %d",
     "a schedule file sets the pipeline's virtual stages V before partitioning "
     "(read_schedule_file), so S = P x V agrees; a guard against a bug"),
]
STR_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
CONV_RE = re.compile(r"%[-+ #0]*[0-9*]*(?:\.[0-9*]+)?(?:hh|h|ll|l|z|j|t|L)?[diouxXeEfgGcsp%]")


def call_text(src, start):
    """The argument text of the call whose '(' is at start (balanced)."""
    depth, i = 0, start
    while i < len(src):
        c = src[i]
        if c == '"':
            m = STR_RE.match(src, i)
            i = m.end()
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return src[start + 1:i]
        i += 1
    return src[start + 1:]


def pattern(fmt):
    out, pos = "", 0
    for m in CONV_RE.finditer(fmt):
        out += re.escape(fmt[pos:m.start()])
        out += "%" if m.group(0) == "%%" else ".*"
        pos = m.end()
    return out + re.escape(fmt[pos:])


def unescape(s):
    return s.replace('\\"', '"').replace("\\\\", "\\").replace("\\n", "\n")


def sources(paths):
    """The files to scan: each file given, and each *.c, *.l, *.y of each
    directory given that reports errors."""
    out = []
    for p in paths:
        if not os.path.isdir(p):
            out.append(p)
            continue
        names = sorted(os.listdir(p))
        stems = {n[:-2] for n in names if n.endswith((".l", ".y"))}
        for n in names:
            if not n.endswith((".c", ".l", ".y")):
                continue
            if n.endswith(".c") and n[:-2] in stems:
                continue                    # flex's or bison's output, in-tree
            f = os.path.join(p, n)
            if REPORTS_RE.search(open(f, encoding="utf-8", errors="replace").read()):
                out.append(f)
    return out


def sites(path):
    src = open(path, encoding="utf-8").read()
    calls = BASE_CALLS + [w for w in WRAPPER_RE.findall(src)
                          if re.search(r"\bdiag_verror\s*\(", src[src.find(w + "("):])]
    call_re = re.compile(r"\b(%s)\s*\(" % "|".join(map(re.escape, calls)))
    for m in call_re.finditer(src):
        line = src.count("\n", 0, m.start()) + 1
        before = src[max(0, m.start() - 20):m.start()]
        if re.search(r"(void|\*)\s*$", before):
            continue                        # a definition: diag_error(), unknown(), err()
        args = call_text(src, m.end() - 1)
        if m.group(1) in ("unknown", "diag_unknown"):
            what = STR_RE.search(args)
            if not what:
                continue
            yield line, "unknown %s '%%s'" % unescape(what.group(1)), \
                "unknown " + re.escape(unescape(what.group(1))) + " '[^']*'.*"
            continue
        # the format: the adjacent string literals from the first one (a
        # location never holds a literal); a ?: between literals gives
        # alternatives (any one may be covered).
        rest = args[args.index('"'):] if '"' in args else ""
        i = 0
        alts = [""]
        while i < len(rest):
            c = rest[i]
            if c.isspace():
                i += 1
                continue
            if c == '"':
                sm = STR_RE.match(rest, i)
                alts[-1] += unescape(sm.group(1))
                i = sm.end()
                continue
            if c in "?:" and alts[-1]:
                alts.append("")
                i += 1
                continue
            break
        alts = [a for a in alts if a]
        if not alts or alts == ["%s"]:
            continue                        # a message made elsewhere (yyerror's)
        fmt = " | ".join(alts)
        yield line, fmt, "(" + "|".join(pattern(a) for a in alts) + ")"


def main():
    argv = sys.argv[1:]
    cut = argv.index("--")
    srcs, cases = sources(argv[:cut]), argv[cut + 1:]
    expects = []
    for c in cases:
        for ln in open(c, encoding="utf-8", errors="replace"):
            m = re.match(r"\s*#\s*expect:\s*(.*)", ln)
            if m:
                msg = re.sub(r"^(--set '[^']*':|[\w.-]+\.csv:)?\d+:\d+:\s*", "",
                             m.group(1).strip())
                expects.append((c, msg))
    missing = 0
    for s in srcs:
        name = s.rsplit("/", 1)[-1]
        for line, fmt, pat in sites(s):
            why = next((w for f, r, w in EXEMPT if f == name and re.search(r, fmt)), None)
            if why:
                print("exempt  %s:%d %s    -- %s" % (name, line, fmt, why))
                continue
            rx = re.compile("^" + pat + "$", re.S)
            hit = next((c for c, msg in expects if rx.match(msg)), None)
            if hit:
                print("covered %s:%d %s    <- %s" % (name, line, fmt, hit.rsplit("/", 2)[-2] + "/" +
                                                      hit.rsplit("/", 1)[-1]))
            else:
                missing += 1
                print("missing %s:%d %s" % (name, line, fmt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
