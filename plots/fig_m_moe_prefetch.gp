# (m) MoE prefetch: speed-up over no prefetch against the router predictor's
# accuracy, serial and pipelined (reads issued by prefetch overlap earlier
# layers' compute), gpt-oss-120b on the phone UFS 4.0 profile, 16 GB budget.
# Input: R/moe-prefetch/results.csv (`lifsim sweep
# experiments/moe-prefetch.ini`). Columns: 3 prefetch, 4 prefetch_accuracy,
# 5 overlap. The oracle is drawn at accuracy 1.
f = R.'/moe-prefetch/results.csv'
set title "MoE prefetch by a router predictor: gpt-oss-120b, phone UFS 4.0, 16 GB, LRU" font F_TITLE
set xlabel 'predictor accuracy (P(a selected expert is predicted); oracle = 1)'
set ylabel 'tokens/s over prefetch = none'
set xrange [0:1.05]
set key bottom right
pt(P, O) = sel(f, sprintf('$3 == "%s" && $5 == "%s"', P, O))
stats pt("none", "none") using (column("tokens_per_s")) nooutput
base_serial = STATS_mean
stats pt("none", "pipelined") using (column("tokens_per_s")) nooutput
base_pipe = STATS_mean
set arrow from 0, 1 to 1.05, 1 nohead dt 3 lc rgb C_TOT
plot pt("modeled", "none") using (column("prefetch_accuracy")):(column("tokens_per_s")/base_serial) with linespoints pt 7 ps 0.9*PSF lc rgb C_IO title 'modeled, serial', \
     pt("modeled", "pipelined") using (column("prefetch_accuracy")):(column("tokens_per_s")/base_pipe) with linespoints pt 5 ps 0.9*PSF lc rgb C_MEM title 'modeled, pipelined', \
     pt("oracle", "none") using (1):(column("tokens_per_s")/base_serial) with points pt 6 ps 1.4*PSF lc rgb C_IO title 'oracle, serial', \
     pt("oracle", "pipelined") using (1):(column("tokens_per_s")/base_pipe) with points pt 4 ps 1.4*PSF lc rgb C_MEM title 'oracle, pipelined'
