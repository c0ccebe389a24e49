#!/usr/bin/python3
"""diag-sites.py -- every error message the front end can print, and the
error case in t/errors/ that shows it.

    python3 t/diag-sites.py SOURCE... -- CASE.pipe...

Reads each diag_error(...) and sema_unknown(...) call in the SOURCEs (the
semantic pass's compiler/sema*.c, lexer.l, parser.y), takes its format
string (adjacent literals joined; both arms of a ?: on literals), turns
it into a pattern (%d, %s, ... match anything), and looks for a
`# expect:` line in the CASEs that matches.
Prints one line per call site:

    covered sema.c:123 '%s' takes no arguments    <- errors/no-args.pipe
    missing sema.c:456 a model has at most one loss

so that a new check without a case in t/errors/ fails t/003-errors.t.
"""
import re
import sys

CALL_RE = re.compile(r"\b(diag_error|sema_unknown)\s*\(")
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


def sites(path):
    src = open(path, encoding="utf-8").read()
    for m in CALL_RE.finditer(src):
        line = src.count("\n", 0, m.start()) + 1
        before = src[max(0, m.start() - 20):m.start()]
        if re.search(r"(static void|void)\s*$", before):
            continue                        # a definition
        args = call_text(src, m.end() - 1)
        if m.group(1) == "sema_unknown":
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
    sources, cases = argv[:cut], argv[cut + 1:]
    expects = []
    for c in cases:
        for ln in open(c, encoding="utf-8", errors="replace"):
            m = re.match(r"\s*#\s*expect:\s*(.*)", ln)
            if m:
                msg = re.sub(r"^(--set '[^']*':)?\d+:\d+:\s*", "", m.group(1).strip())
                expects.append((c, msg))
    missing = 0
    for s in sources:
        name = s.rsplit("/", 1)[-1]
        for line, fmt, pat in sites(s):
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
