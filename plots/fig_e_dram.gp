# (e) DRAM budget against latency per token. Input: R/dram-budget/results.csv
# (`lifsim sweep experiments/dram-budget.ini`). The paper's Fig. 7 shows the
# trend only (no published values), so there are no paper points.
f = R.'/dram-budget/results.csv'
set title "OPT-6.7B fp16, M1 Max profile, modeled predictor, bundled rows\n(each budget: the largest window k <= 5 that fits, hottest neurons pinned into the rest)" font F_TITLE
set xlabel 'DRAM budget (% of the model''s 13.3 GB)'
set ylabel 'latency per token (ms)'
set xrange [32:83]
set xtics 5
set yrange [0:850]
set key top right
set boxwidth 3.4
set object 1 rect from 32, graph 0 to 43.9, graph 1 fc rgb '#eeeeee' fs solid 1.0 noborder behind
set label 2 "the paper's Fig. 7 shows this trend\nwithout values (nothing to draw beside)" at graph 0.99, graph 0.72 right font F_NOTE
set label 1 "cannot run in lifsim:\nembeddings + attention\n(35.5%) + predictor +\none token's loads > budget" at 33, graph 0.95 font F_NOTE
plot f using (column("dram_budget_frac")*100):(column("io_ms")+column("mem_ms")+column("compute_ms")) with boxes lc rgb C_CMP title 'compute', \
     f using (column("dram_budget_frac")*100):(column("io_ms")+column("mem_ms")) with boxes lc rgb C_MEM title 'memory management', \
     f using (column("dram_budget_frac")*100):(column("io_ms")) with boxes lc rgb C_IO title 'I/O (flash)', \
     f using (column("dram_budget_frac")*100):(column("total_ms")):(sprintf("k=%d\n%.0f%% pinned", column("window"), column("hybrid_frac")*100)) with labels offset 0,1.6 font F_LAB notitle
