# (f) Latency of every token over a long generation from an empty window.
# Input: R/long-generation/tokens.csv (`lifsim tokens` of the per-token file
# written by `lifsim sweep experiments/long-generation.ini`). The paper's
# Fig. 8 shows the trend only (no published values).
f = R.'/long-generation/tokens.csv'
set title "OPT-6.7B on the M1 Max CPU profile, all techniques (fp32, window 5), no warm-up" font ',11'
set xlabel 'generated token (1 = the first; log scale)'
set ylabel 'latency (ms per token)'
set logscale x 10
set autoscale xfix
set yrange [0:*]
set key top right font ',10'
plot f using (column("token")+1):(column("total_ms")) with lines lc rgb C_TOT title 'total', \
     f using (column("token")+1):(column("compute_ms")) with lines lc rgb C_CMP title 'compute', \
     f using (column("token")+1):(column("io_ms")) with lines lc rgb C_IO title 'I/O (flash)', \
     f using (column("token")+1):(column("mem_ms")) with lines lc rgb C_MEM title 'memory management'
