# (n) MoE expert layouts compared: io time per token against queue depth,
# Qwen3-30B-A3B (bf16, LRU of 32 experts per layer), phone UFS 4.0 and M1 Max
# profiles; one extent per expert, per matrix, or co-selected experts
# adjacent, each with read merging (max_gap) 0, 4 MiB and 16 MiB.
# Input: R/moe-layouts/results.csv (`lifsim sweep
# experiments/moe-layouts.ini`). Columns: 3 device, 4 expert_layout,
# 5 max_gap, 6 parallelism.
f = R.'/moe-layouts/results.csv'
set multiplot layout 1,2 title "MoE expert layouts on flash: Qwen3-30B-A3B bf16, LRU 32 experts/layer (same misses in every line)" font F_TITLE
set xlabel 'parallelism (reads in flight)'
set ylabel 'io ms per token'
set logscale x 2
set xrange [0.8:80]
set key bottom right font F_NOTE
pt(D, L, G) = sel(f, sprintf('index($3, "%s") > 0 && $4 == "%s" && $5 == "%s"', D, L, G))
gaps = "0 4MiB 16MiB"
gapname(i) = word(gaps, i)
do for [D in "ufs40 m1max"] {
	set title (D eq "ufs40" ? "phone UFS 4.0" : "M1 Max") font F_TITLE
	stats sel(f, sprintf('index($3, "%s") > 0', D)) using (column("io_ms")) nooutput
	set yrange [0:STATS_max * 1.1]
	plot for [i = 1:3] pt(D, "expert", word(gaps, i)) using (column("parallelism")):(column("io_ms")) with linespoints dt i pt 7 ps 0.8*PSF lc rgb ser(1) title sprintf('expert, gap %s', gapname(i)), \
	     for [i = 1:3] pt(D, "matrix", word(gaps, i)) using (column("parallelism")):(column("io_ms")) with linespoints dt i pt 5 ps 0.8*PSF lc rgb ser(2) title sprintf('matrix, gap %s', gapname(i)), \
	     for [i = 1:3] pt(D, "cosel", word(gaps, i)) using (column("parallelism")):(column("io_ms")) with linespoints dt i pt 9 ps 0.8*PSF lc rgb ser(3) title sprintf('cosel, gap %s', gapname(i))
}
unset multiplot
