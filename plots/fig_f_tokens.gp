# (f) Latency of every token over a long generation from an empty window.
# Input: R/long-generation/tokens.csv (`lifsim tokens` of the per-token file
# written by `lifsim sweep experiments/long-generation.ini`). The paper's
# Fig. 8 shows the trend only (no published values); its Table 3 "all
# techniques" row (the same configuration, a mean per token) is drawn beside
# as dashed lines in each part's colour, read from the ref_* columns of
# R/paper-table3/results.csv (`lifsim sweep experiments/paper-table3.ini`).
f = R.'/long-generation/tokens.csv'
t3 = R.'/paper-table3/results.csv'
set title "OPT-6.7B on the M1 Max CPU profile, all techniques (fp32, window 5), from an empty window" font F_TITLE
set xlabel 'generated token (1 = the first; log scale)'
set ylabel 'latency (ms per token)'
set logscale x 10
stats f using (column("token") + 1) nooutput
call 'logtics.gpi' 'x' 1 STATS_max
set yrange [0:1050]
set key top right
PAPER = ""
if (have(t3)) {
	stats sel(t3, '$3 == "all"') using (column("ref_total_ms")) nooutput; P_TOT = STATS_max
	stats sel(t3, '$3 == "all"') using (column("ref_compute_ms")) nooutput; P_CMP = STATS_max
	stats sel(t3, '$3 == "all"') using (column("ref_io_ms")) nooutput; P_IO = STATS_max
	stats sel(t3, '$3 == "all"') using (column("ref_mem_ms")) nooutput; P_MEM = STATS_max
	set arrow 1 from graph 0, first P_TOT to graph 1, first P_TOT nohead dt 2 lw 1.5 lc rgb C_TOT
	set arrow 2 from graph 0, first P_CMP to graph 1, first P_CMP nohead dt 2 lw 1.5 lc rgb C_CMP
	set arrow 3 from graph 0, first P_IO to graph 1, first P_IO nohead dt 2 lw 1.5 lc rgb C_IO
	set arrow 4 from graph 0, first P_MEM to graph 1, first P_MEM nohead dt 2 lw 1.5 lc rgb C_MEM
	PAPER = sprintf("paper, Table 3 (dashed; ms, mean per token): %.0f total, %.0f compute, %.0f I/O, %.0f mem.", P_TOT, P_CMP, P_IO, P_MEM)
}
plot f using (column("token")+1):(column("total_ms")) with lines lc rgb C_TOT title 'lifsim: total', \
     f using (column("token")+1):(column("compute_ms")) with lines lc rgb C_CMP title 'compute', \
     f using (column("token")+1):(column("io_ms")) with lines lc rgb C_IO title 'I/O (flash)', \
     f using (column("token")+1):(column("mem_ms")) with lines lc rgb C_MEM title 'memory management', \
     (strlen(PAPER) ? NaN : 1/0) with lines dt 2 lw 1.5 lc rgb 'black' title (strlen(PAPER) ? PAPER : '')
