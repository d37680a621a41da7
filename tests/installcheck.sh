#!/usr/bin/env bash
# make installcheck: the installed lifsim, run from an empty temporary
# directory, finds the shipped files by short name and runs them.
#   tests/installcheck.sh BINDIR PKGDATADIR MANDIR VERSION
# (Makefile.am passes $(DESTDIR)$(bindir) etc.; run it by hand after
# `make install DESTDIR=X` with X's paths.)
set -euo pipefail
bindir=$1 datadir=$2 mandir=$3 version=$4
lifsim=$bindir/lifsim
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lifsim-installcheck.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
unset LIFSIM_PATH
say() { echo "installcheck: $*"; }
fail() { echo "installcheck: FAIL: $*" >&2; exit 1; }

[ -x "$lifsim" ] || fail "$lifsim is not installed"
# "lifsim VERSION (commit C)": C is a commit, or unknown when built outside a git checkout
v=$("$lifsim" --version) && [[ "$v" =~ ^"lifsim $version (commit "([0-9a-f]+(-dirty)?|unknown)")"$ ]] ||
	fail "--version printed '$v', not 'lifsim $version (commit C)'"
say "$v"
"$lifsim" --help | grep -qF "$datadir" || fail "lifsim --help does not name the data directory $datadir"

# short names from an empty directory: a model, a device, an experiment
"$lifsim" -q synth opt-6.7b --tokens 50 -o t.h5 && [ -s t.h5 ] || fail "synth opt-6.7b"
"$lifsim" -q stats t.h5 -o t.csv && [ -s t.csv ] || fail "stats"
"$lifsim" device m1max --chunks 16KiB --parallelism 32 | grep -q '^16384,32,' || fail "device m1max"
say "synth opt-6.7b, stats, device m1max: ok"

# an installed experiment, by short name (its ../models paths hold in the data directory)
"$lifsim" -q sweep paper-table2 -o t2 || fail "sweep paper-table2"
[ "$(wc -l <t2/results.csv)" -eq 6 ] || fail "sweep paper-table2: expected 5 points in t2/results.csv"
grep -q "^experiment = $datadir/experiments/paper-table2.ini" t2/config.resolved.ini ||
	fail "sweep paper-table2 did not read the installed experiment"
"$lifsim" -q sweep example-echo -o echo && [ -s echo/results.csv ] || fail "sweep example-echo"
say "sweep paper-table2 (installed), example-echo: ok"

# keys of the user's own experiment by short name, and LIFSIM_PATH
mkdir -p mine/llms
sed 's/^name *=.*/name = my-opt/' "$datadir/models/llms/opt-6.7b.ini" >mine/llms/my-opt.ini
cat >exp.ini <<'INI'
[experiment]
model = my-opt
device = m1max
trace = synth
[synth]
tokens = 50
[sim]
window = 0, 2
INI
LIFSIM_PATH=$work/mine "$lifsim" -q sweep exp.ini -o exp && [ "$(wc -l <exp/results.csv)" -eq 3 ] ||
	fail "an experiment with model = my-opt (LIFSIM_PATH) and device = m1max"
if "$lifsim" -q sweep exp.ini -o exp2 2>err.txt; then fail "model = my-opt found without LIFSIM_PATH"; fi
grep -q "no model description 'my-opt' in: .*$datadir" err.txt || fail "error lacks the places searched: $(cat err.txt)"
say "experiment keys by short name, LIFSIM_PATH, the not-found error: ok"

# the man page: installed, renders, and agrees with the installed binary
page=$mandir/man1/lifsim.1
[ -r "$page" ] || fail "$page is not installed"
if command -v man >/dev/null; then
	MANWIDTH=80 man -l "$page" 2>&1 | grep -q 'SEARCH PATH' || fail "man -l $page"
else
	say "man is not installed: rendering skipped"
fi
bash "$here/manpage.sh" "$lifsim" "$page" >/dev/null || bash "$here/manpage.sh" "$lifsim" "$page"
say "man page $page: ok"
say "all passed"
