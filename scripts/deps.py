#!/usr/bin/env python3
"""scripts/deps.py [BUILDDIR] — include and call loops between source files.

A file that calls another while that one calls it back (or a header that
includes a file including it) makes the two one module in all but name:
neither can be read, tested or replaced alone.  This lists such loops:

  calls     from the object files of BUILDDIR (default: build) with nm:
            file A -> file B when A's object uses a symbol B's defines.
            Every strongly connected set of more than one file is a loop.
  includes  from the sources: #include "x.h" edges between the
            repository's own files, and the loops among them.
  layers    a runtime file that includes a compiler header (never allowed:
            the compiler may read the runtime's public headers, not the
            reverse).

Exit status 0 when there is no loop and no layering violation, 1 otherwise,
so a test can hold the line.
"""
import os
import re
import subprocess
import sys

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(top, "build"))


def sccs(graph):
    """Tarjan's strongly connected components with more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def source_of(obj):
    """compiler/libpipec_a-sema.o -> compiler/sema.c (best effort)."""
    rel = os.path.relpath(obj, build)
    d, base = os.path.split(rel)
    base = re.sub(r"^lib[a-z_]+_a-", "", base)
    base = re.sub(r"^pipec-", "", base)
    stem = base[:-2]
    for ext in (".c", ".cu", ".l", ".y"):
        if os.path.exists(os.path.join(top, d, stem + ext)):
            return os.path.join(d, stem + ext)
    if stem in ("lexer", "parser"):
        return os.path.join(d, stem + (".l" if stem == "lexer" else ".y"))
    return os.path.join(d, stem + ".?")


def call_graph(libdir_objs):
    defs, uses = {}, {}
    for obj in libdir_objs:
        src = source_of(obj)
        r = subprocess.run(["nm", obj], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TDBR":
                defs.setdefault(parts[2], set()).add(src)
            elif len(parts) == 2 and parts[0] == "U":
                uses.setdefault(src, set()).add(parts[1])
    graph = {}
    for src, syms in uses.items():
        for sym in syms:
            for d in defs.get(sym, ()):
                if d != src:
                    graph.setdefault(src, set()).add(d)
    return graph


def objects(groups):
    out = {}
    for dirpath, _, files in os.walk(build):
        for f in files:
            if not f.endswith(".o"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), build)
            for name, pat in groups:
                if re.match(pat, rel):
                    out.setdefault(name, []).append(os.path.join(dirpath, f))
    return out


def include_graph():
    graph, layering = {}, []
    for d in ("compiler", "runtime", "runtime/cuda"):
        full = os.path.join(top, d)
        if not os.path.isdir(full):
            continue
        for f in sorted(os.listdir(full)):
            if not re.search(r"\.(c|h|cu|cuh|l|y)$", f):
                continue
            path = os.path.join(d, f)
            with open(os.path.join(top, path), errors="replace") as fh:
                for m in re.finditer(r'^\s*#\s*include\s+"([^"]+)"', fh.read(), re.M):
                    inc = m.group(1)
                    for cand in (os.path.normpath(os.path.join(d, inc)), "compiler/" + inc,
                                 "runtime/" + inc, "runtime/cuda/" + inc):
                        if os.path.exists(os.path.join(top, cand)):
                            graph.setdefault(path, set()).add(cand)
                            if d.startswith("runtime") and cand.startswith("compiler/"):
                                layering.append((path, cand))
                            break
    return graph, layering


def main():
    bad = 0
    groups = [("compiler", r"compiler/libpipec_a-|compiler/pipec-"),
              ("runtime (cpu)", r"runtime/libpipert_a-"),
              ("runtime (cuda)", r"runtime/(libpipert_cuda_a-|cuda/)")]
    objs = objects(groups)
    for name, _ in groups:
        if name not in objs:
            print(f"calls, {name}: not built in {build}")
            continue
        loops = sccs(call_graph(objs[name]))
        print(f"calls, {name}: {len(loops)} loop(s) among {len(objs[name])} objects")
        for comp in loops:
            print("  " + " <-> ".join(comp))
        bad += len(loops)
    graph, layering = include_graph()
    loops = sccs(graph)
    print(f"includes: {len(loops)} loop(s)")
    for comp in loops:
        print("  " + " <-> ".join(comp))
    print(f"layers: {len(layering)} runtime file(s) including a compiler header")
    for a, b in layering:
        print(f"  {a} includes {b}")
    bad += len(loops) + len(layering)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
