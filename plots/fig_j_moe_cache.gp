# (j) MoE expert caches: hit rate against cache size for each policy, with
# Belady's offline optimum as the bound. Input: R/moe-cache/results.csv
# (`lifsim sweep experiments/moe-cache.ini`). Column 3: cache_policy.
f = R.'/moe-cache/results.csv'
set title "gpt-oss-120b (128 experts, top-4, 36 MoE layers), synthetic router trace, 1000 tokens, cold start" font F_TITLE
set xlabel 'expert cache (experts held per MoE layer)'
set ylabel 'expert hit rate (%)'
set xrange [0:128]
set yrange [0:100]
set xtics 16
set key bottom right
pol(P) = sel(f, sprintf('$3 == "%s"', P))
plot pol("belady") using (column("expert_cache")):(100*column("expert_hit_rate")) with linespoints dt 2 lw 2 pt 7 ps 0.9*PSF lc rgb C_TOT title 'belady (offline optimum: the bound)', \
     pol("lru") using (column("expert_cache")):(100*column("expert_hit_rate")) with linespoints pt 5 ps 0.9*PSF lc rgb ser(1) title 'lru', \
     pol("lfu") using (column("expert_cache")):(100*column("expert_hit_rate")) with linespoints pt 9 ps 0.9*PSF lc rgb ser(2) title 'lfu', \
     pol("static") using (column("expert_cache")):(100*column("expert_hit_rate")) with linespoints pt 11 ps 0.9*PSF lc rgb ser(3) title 'static (hottest pinned)'
