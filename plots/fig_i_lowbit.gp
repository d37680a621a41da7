# (i) Low-bit weights: latency per token by weight bits for the two GEMV
# kernels (T-MAC table lookup, dequantize-then-multiply). Input:
# R/lowbit/results.csv (`LOWBIT_DEVICE=... lifsim sweep experiments/lowbit.ini`;
# make plots measures the kernel rates with `lifsim bench-gemv --profile`
# first, experiments/README.md). Columns 3-6: bits, kernel, window, layout.
# bits 0 is the model's fp16 with the roofline compute (both kernels equal).
f = R.'/lowbit/results.csv'
xb(b) = b == 0 ? 0 : 5 - b
w = 0.36
set multiplot layout 1,2 title "OPT-6.7B synthetic trace, modeled predictor, group 32: M1 Max flash + this host's single-thread GEMV kernels" font F_TITLE
set xtics ('fp16' 0, '4' 1, '3' 2, '2' 3, '1' 4) nomirror
set xlabel 'bits per linear weight'
set xrange [-0.6:4.6]
set title 'window 5, rowcol: left bar LUT, right (hatched) bar dequant' font F_TITLE
set ylabel 'latency per token (ms)'
set yrange [0:*]
set offsets 0, 0, graph 0.30, 0
set key top left
set boxwidth w
lut = sel(f, '$4 == "lut" && $5 == 5 && $6 == "rowcol"')
deq = sel(f, '$4 == "dequant" && $5 == 5 && $6 == "rowcol"')
plot \
  lut using (xb(column("bits"))-w/2):(column("io_ms")+column("mem_ms")+column("compute_ms")) with boxes lc rgb C_CMP title 'compute', \
  lut using (xb(column("bits"))-w/2):(column("io_ms")+column("mem_ms")) with boxes lc rgb C_MEM title 'memory management', \
  lut using (xb(column("bits"))-w/2):(column("io_ms")) with boxes lc rgb C_IO title 'I/O (flash)', \
  deq using (xb(column("bits"))+w/2):(column("io_ms")+column("mem_ms")+column("compute_ms")) with boxes fs pattern 4 border -1 lc rgb C_CMP notitle, \
  deq using (xb(column("bits"))+w/2):(column("io_ms")+column("mem_ms")) with boxes fs pattern 4 border -1 lc rgb C_MEM notitle, \
  deq using (xb(column("bits"))+w/2):(column("io_ms")) with boxes fs pattern 4 border -1 lc rgb C_IO notitle, \
  lut using (xb(column("bits"))-w/2):(column("total_ms")):(sprintf('%.0f', column("total_ms"))) with labels offset 0,0.7 font F_LAB notitle, \
  deq using (xb(column("bits"))+w/2):(column("total_ms")):(sprintf('%.0f', column("total_ms"))) with labels offset 0,0.7 font F_LAB notitle
set title 'total per token: kernel, window k and layout' font F_TITLE
set logscale y
set offsets 0, 0, 0, 0
set yrange [*:*]
stats f using (column("total_ms")) nooutput
call 'logtics.gpi' 'y' (STATS_min / 2.6) (STATS_max * 1.3)
set key bottom left maxrows 8 samplen 4
cond(K, W, L) = sprintf('$4 == "%s" && $5 == %s && $6 == "%s"', K, W, L)
# eight series, eight colours; the kernel also by dash (lut solid, dequant
# dashed) and the layout by point type (rowcol circles, separate squares)
KS = "lut lut lut lut dequant dequant dequant dequant"
WS = "0 0 5 5 0 0 5 5"
LS = "rowcol separate rowcol separate rowcol separate rowcol separate"
DT = "1 1 1 1 2 2 2 2"
plot for [i = 1 : 8] sel(f, cond(word(KS, i), word(WS, i), word(LS, i))) \
       using (xb(column("bits"))):(column("total_ms")) with linespoints \
       dt int(word(DT, i)) lw 1.5 pt (word(LS, i) eq "rowcol" ? 7 : 5) ps 1.0*PSF lc rgb ser(i) \
       title word(KS, i).', k='.word(WS, i).', '.word(LS, i)
unset multiplot
