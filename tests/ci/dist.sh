#!/usr/bin/env bash
# CI (called from .ci/run after the test suite): the release checks.
#   1. the tarball holds every tracked file (EXTRA_DIST and the dist_ lists
#      name files, so a new file must be added there);
#   2. make distcheck: the tarball configures, builds, passes make check in a
#      VPATH build from a read-only source tree, installs, passes
#      make installcheck, uninstalls cleanly;
#   3. make install DESTDIR=X and tests/installcheck.sh on the staged tree (the
#      staged binary finds its data next to itself).
# Run from a configured source tree: bash tests/ci/dist.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
stamp() { echo "dist.sh: $1 ($(($(date +%s) - t0)) s)"; }
make -s dist >/dev/null
tarball=$(ls -t lifsim-*.tar.gz | head -1)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	missing=$(comm -23 <(git ls-files | grep -vE '^(\.gitignore|paper/\.gitignore|m4/\.gitkeep)$' | sort) \
		<(tar tzf "$tarball" | sed 's|^[^/]*/||' | sort))
	if [ -n "$missing" ]; then
		echo "dist.sh: tracked files missing from $tarball (list them in Makefile.am):"
		echo "$missing"
		exit 1
	fi
fi
stamp "$tarball holds every tracked file"
make -s distcheck >dist-check.log 2>&1 || { tail -60 dist-check.log; exit 1; }
stamp "make distcheck passed"
stage=$(mktemp -d "${TMPDIR:-/tmp}/lifsim-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
make -s install DESTDIR="$stage" >/dev/null
prefix=$(sed -n 's/^prefix = //p' Makefile)
version=$(sed -n 's/^PACKAGE_VERSION = //p' Makefile)
bash tests/installcheck.sh "$stage$prefix/bin" "$stage$prefix/share/lifsim" "$stage$prefix/share/man" "$version"
stamp "make install DESTDIR=$stage: installcheck passed"
