# (k) MoE from flash: tokens/s against the DRAM budget, a 30B-A3B-class and a
# 120B-class model, phone UFS 4.0 and M1 Max profiles, LRU and the Belady
# bound. Input: R/moe-dram/results.csv (`lifsim sweep
# experiments/moe-dram.ini`). Columns: 3 row (model), 5 device, 6 policy, 8 fits.
f = R.'/moe-dram/results.csv'
set multiplot layout 1,2 title "MoE experts from flash, bf16, per-layer expert cache, serial io + mem + compute" font F_TITLE
set xlabel 'DRAM budget (GB)'
set ylabel 'tokens per second'
set logscale x 2
set logscale y
set xrange [3.5:300]
set key top left
pt(M, D, P) = sel(f, sprintf('$3 == "%s" && index($5, "%s") > 0 && $6 == "%s" && $8 == 1', M, D, P))
do for [M in "qwen3-30b-a3b gpt-oss-120b"] {
	set title M font F_TITLE
	set yrange [*:*]
	stats sel(f, sprintf('$3 == "%s" && $8 == 1', M)) using (column("tokens_per_s")) nooutput
	call 'logtics.gpi' 'y' (STATS_min / 1.5) (STATS_max * 6)
	plot pt(M, "ufs40", "lru") using (column("moe.dram_budget")/1e9):(column("tokens_per_s")) with linespoints pt 7 ps 0.9*PSF lc rgb ser(1) title 'phone UFS 4.0, lru', \
	     pt(M, "ufs40", "belady") using (column("moe.dram_budget")/1e9):(column("tokens_per_s")) with linespoints dt 2 pt 6 ps 0.9*PSF lc rgb C_IO title 'phone UFS 4.0, belady bound', \
	     pt(M, "m1max", "lru") using (column("moe.dram_budget")/1e9):(column("tokens_per_s")) with linespoints pt 5 ps 0.9*PSF lc rgb C_MEM title 'M1 Max, lru', \
	     pt(M, "m1max", "belady") using (column("moe.dram_budget")/1e9):(column("tokens_per_s")) with linespoints dt 2 pt 4 ps 0.9*PSF lc rgb C_MEM title 'M1 Max, belady bound'
}
unset multiplot
