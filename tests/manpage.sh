#!/usr/bin/env bash
# lifsim(1) and the command agree (make check; make installcheck with an
# installed binary and page): every verb `lifsim --help` lists has a
# subsection `.Ss VERB` in lifsim.1, every long option its `lifsim VERB --help`
# names (in its usage lines or at the start of an option line) appears in that subsection (or among the global options), and the
# page has no verb the command lacks.
#   tests/manpage.sh [LIFSIM [PAGE]]   (defaults: $LIFSIM or ./lifsim, $LIFSIM_SRCDIR/lifsim.1)
set -u
lifsim=${1:-${LIFSIM:-./lifsim}}
page=${2:-${LIFSIM_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}/lifsim.1}
[ -r "$page" ] || { echo "manpage: $page: cannot read"; exit 1; }
verbs=$("$lifsim" --help | awk '/^verbs:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
[ -n "$verbs" ] || { echo "manpage: $lifsim --help lists no verbs"; exit 1; }
# the text of one .Sh or .Ss section of the page
section() { awk -v m="$1" -v n="$2" '$1 == m && $2 == n { on = 1; next } on && ($1 == ".Sh" || $1 == ".Ss") { exit } on' "$page"; }
global=$(section .Sh OPTIONS)
bad=0 nopt=0
for v in $verbs; do
	text=$(section .Ss "$v")
	if [ -z "$text" ]; then
		echo "manpage: verb '$v' has no '.Ss $v' in $page"
		bad=$((bad + 1))
		continue
	fi
	helps=$("$lifsim" "$v" --help 2>&1)
	[ "$v" = predictor ] && helps="$helps$("$lifsim" predictor train --help 2>&1)"
	# options: the usage paragraph's, and those that start an option line
	opts=$({ printf '%s\n' "$helps" | awk '/^$/ { exit } { print }'
		printf '%s\n' "$helps" | grep -E -- '^ +(-[a-zA-Z], )?--[a-z]'; } |
		grep -oE -- '(^|[[ |,(])--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+' | sort -u)
	for o in $opts; do
		nopt=$((nopt + 1))
		if ! printf '%s\n%s\n' "$text" "$global" | grep -qE -- "Fl -${o#--}([^a-z0-9-]|$)"; then
			echo "manpage: '$v $o' (in lifsim $v --help) is not in $page under '.Ss $v'"
			bad=$((bad + 1))
		fi
	done
done
for s in $(awk '$1 == ".Ss" { print $2 }' "$page"); do
	if ! printf '%s\n' $verbs | grep -qx -- "$s"; then
		echo "manpage: $page describes '$s', which lifsim --help does not list"
		bad=$((bad + 1))
	fi
done
if [ $bad -gt 0 ]; then
	echo "manpage: $bad disagreement(s) between $lifsim and $page"
	exit 1
fi
echo "manpage: $(echo $verbs | wc -w) verbs, $nopt options: $page agrees with $lifsim --help"
