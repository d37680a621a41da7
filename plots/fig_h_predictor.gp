# (h) The trained low-rank predictor's false-negative and false-positive
# rates against its rank, on held-out tokens of the recorded trace. Input
# (optional until the recorder branch lands): R/predictor/eval.csv with
# columns rank,fn_rate,fp_rate (fractions, mean over layers; one row per
# rank), gathered from `lifsim predictor eval PRED.h5 TRACE.h5` for a list of
# ranks. The paper's ranks for OPT-6.7B (128, and 1024 for the last 4 layers)
# are marked; the paper publishes no rate per rank.
f = R.'/predictor/eval.csv'
if (have(f)) {
	set title 'low-rank predictor on the recorded small-model trace (held-out tokens)'
	set xlabel 'predictor rank'
	set ylabel 'rate (%)'
	set logscale x 2
	set yrange [0:*]
	set key top right font ',10'
	set arrow 1 from 128, graph 0 to 128, graph 1 nohead dt 3 lc rgb C_PAPER
	set label 1 "paper's OPT rank 128" at 128, graph 0.95 offset 0.5,0 tc rgb C_PAPER font ',9'
	plot f using (column("rank")):(column("fn_rate")*100) with linespoints pt 7 ps PSF lc rgb C_IO title 'false negatives (missed active / active)', \
	     f using (column("rank")):(column("fp_rate")*100) with linespoints pt 5 ps PSF lc rgb C_MEM title 'false positives (flagged inactive / inactive)'
} else {
	call 'placeholder.gpi' 'predictor FN / FP rate against rank (recorded trace)' 'results/predictor/eval.csv (rank,fn_rate,fp_rate)' 'lifsim predictor eval PRED.h5 TRACE.h5 per rank (recorder branch)'
}
