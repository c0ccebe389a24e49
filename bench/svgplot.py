"""bench/svgplot.py — line and bar charts as plain SVG (no matplotlib needed).

Small on purpose: axes with round ticks (linear or log), a legend, dashed
series for predictions, bars with their values written on them.
"""
import math
from xml.sax.saxutils import escape

W, H = 860, 400
ML, MR, MT, MB = 70, 230, 40, 60         # margins: left, right (the legend), top, bottom
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#17becf", "#bcbd22"]


def _nice_ticks(lo, hi, n=6):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    t = math.floor(lo / step) * step
    ticks = []
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _log_ticks(lo, hi):
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = []
    for e in range(a, b + 1):
        for m in ((1, 2, 5) if b - a <= 3 else (1,)):
            v = m * 10 ** e
            if lo * 0.999 <= v <= hi * 1.001:
                ticks.append(v)
    return ticks or [lo, hi]


def _label(v):
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return "%.3g" % v
    if a >= 100:
        return "%d" % round(v)
    return ("%.3f" % v).rstrip("0").rstrip(".")


class _Axis:
    def __init__(self, lo, hi, log, a, b):
        self.log = log
        if log:
            lo, hi = lo / 1.25, hi * 1.25
            self.ticks = _log_ticks(lo, hi)
        else:
            self.ticks = _nice_ticks(lo, hi)
            lo, hi = min(lo, self.ticks[0]), max(hi, self.ticks[-1])
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v):
        if self.log:
            f = (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.a + f * (self.b - self.a)


def _frame(title, xlabel, ylabel, notes):
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="12">' % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>' % (ML, escape(title))]
    if xlabel:
        out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>'
                   % ((ML + W - MR) / 2, H - 14, escape(xlabel)))
    if ylabel:
        out.append('<text transform="translate(16,%d) rotate(-90)" text-anchor="middle">%s</text>'
                   % ((MT + H - MB) / 2, escape(ylabel)))
    if notes:
        out.append('<text x="%d" y="%d" font-size="10" fill="#555" text-anchor="end">%s</text>'
                   % (W - MR, H - 2, escape(notes)))
    return out


def _legend(out, labels, dashed=(), colors=None):
    x, y = W - MR + 15, MT + 8
    for i, lab in enumerate(labels):
        c = colors[i] if colors else COLORS[i % len(COLORS)]
        dash = ' stroke-dasharray="5,3"' if i in dashed else ""
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2.5"%s/>'
                   % (x, y + 14 * i, x + 22, y + 14 * i, c, dash))
        out.append('<text x="%d" y="%d" font-size="11">%s</text>' % (x + 28, y + 14 * i + 4, escape(lab)))


def line_chart(path, title, xlabel, ylabel, series, logx=False, logy=False, notes="",
               ymin=None):
    """series: [{"label": str, "points": [(x, y)], "dashed": bool, "line": bool (False:
    markers only), "markers": bool, "color": index into COLORS (default: the series')}]"""
    pts = [p for s in series for p in s["points"] if p[1] is not None and p[1] == p[1]]
    if not pts:
        return
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    ylo = min(ys) if logy else (ymin if ymin is not None else min(0, min(ys)))
    X = _Axis(min(xs), max(xs), logx, ML, W - MR)
    Y = _Axis(ylo, max(ys) * (1.0 if logy else 1.08), logy, H - MB, MT)
    out = _frame(title, xlabel, ylabel, notes)
    for t in Y.ticks:
        y = Y(t)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (ML, W - MR, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (ML - 5, y + 4, _label(t)))
    xt = sorted(set(xs)) if len(set(xs)) <= 12 else X.ticks
    for t in xt:
        x = X(t)
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999"/>'
                   % (x, x, H - MB, H - MB + 4))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                   % (x, H - MB + 17, _label(t)))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>' % (ML, W - MR, H - MB, H - MB))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>' % (ML, ML, MT, H - MB))
    dashed, colors = set(), []
    for i, s in enumerate(series):
        c = COLORS[s.get("color", i) % len(COLORS)]
        colors.append(c)
        p = sorted((a, b) for a, b in s["points"] if b is not None and b == b)
        if not p:
            continue
        dash = ""
        if s.get("dashed"):
            dash = ' stroke-dasharray="5,3"'
            dashed.add(i)
        if s.get("line", True):
            out.append('<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>'
                       % (c, dash, " ".join("%.1f,%.1f" % (X(a), Y(b)) for a, b in p)))
        for a, b in p:
            if s.get("markers", True):
                out.append('<circle cx="%.1f" cy="%.1f" r="%d" fill="%s"/>'
                           % (X(a), Y(b), 3 if s.get("line", True) else 4, c))
    _legend(out, [s["label"] for s in series], dashed, colors)
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def bar_chart(path, title, ylabel, groups, series, notes="", logy=False, value_fmt="%.3g"):
    """groups: [label]; series: [{"label": str, "values": [v or None per group]}]"""
    vals = [v for s in series for v in s["values"] if v]
    if not vals:
        return
    Y = _Axis(min(vals) if logy else 0, max(vals) * (1.0 if logy else 1.12), logy, H - MB, MT + 20)
    out = _frame(title, "", ylabel, notes)
    for t in Y.ticks:
        y = Y(t)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (ML, W - MR, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (ML - 5, y + 4, _label(t)))
    gw = (W - ML - MR) / max(1, len(groups))
    bw = gw * 0.8 / max(1, len(series))
    base = Y(Y.lo) if logy else Y(0)
    for g, lab in enumerate(groups):
        x0 = ML + g * gw + gw * 0.1
        for i, s in enumerate(series):
            v = s["values"][g]
            if not v:
                continue
            y = Y(v)
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                       % (x0 + i * bw, y, bw - 2, base - y, COLORS[i % len(COLORS)]))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>'
                       % (x0 + i * bw + bw / 2, y - 3, escape(value_fmt % v)))
        lines = lab.split("\n")
        for k, ln in enumerate(lines):
            out.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="11">%s</text>'
                       % (ML + g * gw + gw / 2, H - MB + 15 + 13 * k, escape(ln)))
    out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black"/>' % (ML, W - MR, base, base))
    _legend(out, [s["label"] for s in series])
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
