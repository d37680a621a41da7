#!/bin/bash
# Build the libFuzzer targets of tests/fuzz/ with clang, ASan and UBSan:
#   tests/fuzz/build.sh [OUTDIR]          (default: build/fuzz)
# The library's sources come from Makefile.am's liblifsim_a_SOURCES.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$src/build/fuzz}
CC=${CC:-$(command -v clang-14 || command -v clang)}
mkdir -p "$out/obj"
pkgs="hdf5 gsl inih liburing libcjson zlib openblas nettle"
cflags="-g -O1 -std=c11 -D_GNU_SOURCE -I$src -fopenmp -mpopcnt -fno-omit-frame-pointer
	-fsanitize=fuzzer-no-link,address,undefined $(pkg-config --cflags $pkgs 2>/dev/null || true)"
libs="$(pkg-config --libs $pkgs 2>/dev/null || echo -lhdf5 -lgsl -linih -luring -lcjson -lz -lopenblas -lnettle) -lm"
srcs=$(sed -n '/^liblifsim_a_SOURCES/,/^$/p' "$src/Makefile.am" | grep -o '[A-Za-z0-9_/]*\.c')
objs=()
for f in $srcs; do
	o="$out/obj/$(echo "$f" | tr / _).o"
	if [ ! -e "$o" ] || [ "$src/$f" -nt "$o" ]; then
		# clang-14 lacks some of gcc's CPU feature names (the GEMV
		# kernels): those objects are built by gcc, uninstrumented
		$CC $cflags -DPACKAGE_VERSION='"fuzz"' -c "$src/$f" -o "$o" 2>/dev/null ||
			gcc -g -O1 -std=c11 -D_GNU_SOURCE -I"$src" -fopenmp -mpopcnt \
				$(pkg-config --cflags $pkgs 2>/dev/null || true) -c "$src/$f" -o "$o"
	fi
	objs+=("$o")
done
rm -f "$out/liblifsim-fuzz.a"
ar rcs "$out/liblifsim-fuzz.a" "${objs[@]}"
for t in "$src"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$t" .c)
	$CC $cflags -fsanitize=fuzzer "$t" "$out/liblifsim-fuzz.a" $libs -o "$out/$name"
	echo "built $out/$name"
done
