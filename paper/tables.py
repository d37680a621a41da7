#!/usr/bin/env python3
"""tables.py RESULTS_DIR OUT_DIR: the report's tables as LaTeX, generated from
the results CSVs (never typed by hand), and status.tex, which says for each
optional input whether it was found (the figure is a placeholder otherwise).
Every output is written to NAME.tmp and renamed."""
import csv
import os
import sys


def die(msg):
    sys.stderr.write("tables.py: %s\n" % msg)
    sys.exit(1)


def rows(path):
    try:
        with open(path, newline="") as f:
            r = list(csv.DictReader(f))
    except OSError as e:
        die("%s: %s" % (path, e.strerror))
    if not r:
        die("%s: no result rows" % path)
    return r


def num(row, key, path):
    try:
        return float(row[key])
    except (KeyError, ValueError):
        die("%s: column %s missing or not a number" % (path, key))


def write(path, text):
    if path.endswith(".tex") and "\\\\" in text and "newcommand" not in text:
        text += "\\bottomrule\n"  # inside the file: a \noalign after \input's end fails
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def pct(a, b):
    return "%+.1f\\%%" % ((a / b - 1) * 100) if b else "--"


LABEL = {"naive": "naive", "hybrid": "hybrid", "predictor": "+ predictor",
         "windowing": "+ windowing ($k=5$)", "bundling": "+ bundling", "all": "all techniques",
         "opt": "OPT-6.7B, $k=5$", "falcon": "Falcon-7B, $k=4$"}


def table2(res, out):
    p = os.path.join(res, "paper-table2/results.csv")
    lines = []
    for r in rows(p):
        io, ref = num(r, "io_ms", p), num(r, "ref_io_ms", p)
        gb, rgb = num(r, "bytes_read_per_token", p) / 1e9, num(r, "ref_bytes_read_per_token", p) / 1e9
        lines.append("%s & %.0f & %.1f & %s & %.2f & %.1f \\\\" % (
            LABEL.get(r["row"], r["row"]), ref, io, pct(io, ref), gb, rgb))
    write(os.path.join(out, "table2.tex"), "\n".join(lines) + "\n")


def table3(res, out):
    p = os.path.join(res, "paper-table3/results.csv")
    lines = []
    for r in rows(p):
        for part, key in (("I/O", "io_ms"), ("memory", "mem_ms"), ("compute", "compute_ms"), ("total", "total_ms")):
            v, ref = num(r, key, p), num(r, "ref_" + key, p)
            lines.append("%s & %s & %.0f & %.1f & %s \\\\" % (
                LABEL.get(r["row"], r["row"]), part, ref, v, pct(v, ref)))
        lines.append("\\addlinespace")
    write(os.path.join(out, "table3.tex"), "\n".join(lines[:-1]) + "\n")


def windowing(res, out):
    p = os.path.join(res, "paper-windowing/results.csv")
    lines = []
    for r in rows(p):
        for what, key in (("loaded per token", "load_frac_per_token"), ("window holds", "window_frac")):
            v, ref = num(r, key, p) * 100, num(r, "ref_" + key, p) * 100
            lines.append("%s & %s & %.1f\\%% & %.2f\\%% & %s \\\\" % (
                LABEL.get(r["row"], r["row"]), what, ref, v, pct(v, ref)))
    write(os.path.join(out, "windowing.tex"), "\n".join(lines) + "\n")


def layouts(res, out):
    p = os.path.join(res, "layouts/results.csv")
    lines = []
    for r in rows(p):
        if r.get("parallelism") != "32":
            continue
        lines.append("\\texttt{%s} & %.3f & %.3f & %.0f & %.0f & %.1f \\\\" % (
            r["layout"], num(r, "bytes_read_per_token", p) / 1e9, num(r, "useful_bytes_per_token", p) / 1e9,
            num(r, "reads_per_token", p), num(r, "mean_read_bytes", p) / 1024, num(r, "io_ms", p)))
    if not lines:
        die("%s: no row at parallelism 32" % p)
    write(os.path.join(out, "layouts.tex"), "\n".join(lines) + "\n")


def dram(res, out):
    p = os.path.join(res, "dram-budget/results.csv")
    lines = []
    for r in rows(p):
        lines.append("%.0f\\%% & %d & %.1f\\%% & %.1f\\%% & %.1f & %.1f & %.1f & %.1f \\\\" % (
            num(r, "dram_budget_frac", p) * 100, int(num(r, "window", p)), num(r, "hybrid_frac", p) * 100,
            num(r, "dram_bytes", p) / num(r, "dram_budget_bytes", p) * num(r, "dram_budget_frac", p) * 100,
            num(r, "io_ms", p), num(r, "mem_ms", p), num(r, "compute_ms", p), num(r, "total_ms", p)))
    write(os.path.join(out, "dram.tex"), "\n".join(lines) + "\n")


def tokens(res, out):
    p = os.path.join(res, "long-generation/tokens.csv")
    r = rows(p)
    tot = [num(x, "total_ms", p) for x in r]
    io = [num(x, "io_ms", p) for x in r]
    n = len(r)
    mean = lambda v: sum(v) / len(v)
    macros = {
        "LongTokens": "%d" % n,
        "LongFirstTotal": "%.0f" % tot[0], "LongFirstIO": "%.0f" % io[0],
        "LongSteadyIO": "%.0f" % mean(io[100:1000] or io),
        "LongSteadyTotal": "%.0f" % mean(tot[100:1000] or tot),
        "LongLastTotal": "%.0f" % mean(tot[-100:]),
    }
    write(os.path.join(out, "tokens.tex"),
          "".join("\\newcommand{\\%s}{%s}\n" % kv for kv in macros.items()))


OPTIONAL = [  # macro, file under RESULTS, figure, the command that makes it
    ("HostCalib", "host/host.raw.csv", "(a), right",
     "\\texttt{lifsim calibrate --file F -o results/host/host.ini}"),
    ("Recorded", "stats/recorded.csv", "(b), third curve",
     "\\texttt{lifsim record}, then \\texttt{lifsim stats -o results/stats/recorded.csv}"),
    ("Validation", "validate/validation.csv", "(g)",
     "\\texttt{lifsim validate experiments/host-validate.ini -o results/validate}"),
    ("PredEval", "predictor/eval.csv", "(h)",
     "\\texttt{lifsim predictor eval PRED.h5 TRACE.h5}, one rank per row"),
]


def status(res, out):
    lines, missing = [], []
    for macro, rel, fig, cmd in OPTIONAL:
        found = os.access(os.path.join(res, rel), os.R_OK)
        lines.append("\\newcommand{\\Have%s}{%s}" % (macro, "1" if found else "0"))
        if not found:
            missing.append("figure %s: \\texttt{results/%s}, made by %s" % (fig, rel.replace("_", "\\_"), cmd))
    body = ("\\begin{itemize}\\raggedright\n" + "".join("\\item %s\n" % m for m in missing) + "\\end{itemize}\n") if missing \
        else "Every input was found: no figure is a placeholder.\n"
    lines.append("\\newcommand{\\MissingInputs}{%s}" % body)
    write(os.path.join(out, "status.tex"), "\n".join(lines) + "\n")


def main():
    if len(sys.argv) != 3:
        die("usage: tables.py RESULTS_DIR OUT_DIR")
    res, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for f in (table2, table3, windowing, layouts, dram, tokens, status):
        f(res, out)


if __name__ == "__main__":
    main()
