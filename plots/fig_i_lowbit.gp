# (i) Low-bit weights: latency per token by weight bits for the two GEMV
# kernels (T-MAC table lookup, dequantize-then-multiply). Input:
# R/lowbit/results.csv (`LOWBIT_DEVICE=... lifsim sweep experiments/lowbit.ini`;
# make plots measures the kernel rates with `lifsim bench-gemv --profile`
# first, experiments/README.md). Columns 3-6: bits, kernel, window, layout.
# bits 0 is the model's fp16 with the roofline compute (both kernels equal).
f = R.'/lowbit/results.csv'
xb(b) = b == 0 ? 0 : 5 - b
w = 0.36
set multiplot layout 1,2 title "OPT-6.7B synthetic, modeled predictor, group 32: M1 Max flash + this host's single-thread kernels" font ',11'
set xtics ('fp16' 0, '4' 1, '3' 2, '2' 3, '1' 4) nomirror
set xlabel 'bits per linear weight'
set xrange [-0.6:4.6]
set title 'window 5, rowcol: left bar LUT, right bar dequant'
set ylabel 'latency per token (ms)'
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set key top right font ',9'
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
  lut using (xb(column("bits"))-w/2):(column("total_ms")):(sprintf('%.0f', column("total_ms"))) with labels offset 0,0.6 font ',8' notitle, \
  deq using (xb(column("bits"))+w/2):(column("total_ms")):(sprintf('%.0f', column("total_ms"))) with labels offset 0,0.6 font ',8' notitle
set title 'total per token, by window and layout'
set logscale y
set offsets 0, 0, 0, 0
set yrange [*:*]
set key bottom left font ',8'
cond(K, W, L) = sprintf('$4 == "%s" && $5 == %s && $6 == "%s"', K, W, L)
plot for [W in "0 5"] for [L in "rowcol separate"] sel(f, cond("lut", W, L)) \
       using (xb(column("bits"))):(column("total_ms")) with linespoints dt 1 \
       pt (L eq "rowcol" ? 7 : 5) ps 0.6*PSF lc rgb (W eq "0" ? C_IO : C_CMP) \
       title 'lut, window '.W.', '.L, \
     for [W in "0 5"] for [L in "rowcol separate"] sel(f, cond("dequant", W, L)) \
       using (xb(column("bits"))):(column("total_ms")) with linespoints dt 2 \
       pt (L eq "rowcol" ? 7 : 5) ps 0.6*PSF lc rgb (W eq "0" ? C_IO : C_CMP) \
       title 'dequant, window '.W.', '.L
unset multiplot
