# (h) The trained low-rank predictor's false-negative and false-positive
# rates against its rank, on held-out tokens of the recorded trace. Input
# (optional until the recorder branch lands): R/predictor/eval.csv with
# columns rank,fn_rate,fp_rate (fractions, mean over layers; one row per
# rank), gathered from `lifsim predictor eval PRED.h5 TRACE.h5` for a list of
# ranks. The paper publishes no rate per rank, so there are no paper points;
# its ranks for OPT-6.7B (128, and 1024 for the last 4 layers, of d_model
# 4096) are stated in the key, not drawn: they belong to another model.
f = R.'/predictor/eval.csv'
if (have(f)) {
	set title 'trained low-rank predictor on the recorded small-model trace (held-out tokens, mean over layers)' font F_TITLE
	set xlabel 'predictor rank (log scale)'
	set ylabel 'rate (%)'
	set logscale x 2
	stats f using (column("rank")) nooutput
	set xrange [STATS_min / 1.25 : STATS_max * 1.25]
	stats f using (100 * (column("fn_rate") > column("fp_rate") ? column("fn_rate") : column("fp_rate"))) nooutput
	set yrange [0 : STATS_max * 1.6]
	set key top right
	plot f using (column("rank")):(column("fn_rate")*100) with linespoints pt 7 ps 1.2*PSF lc rgb ser(1) title 'false negatives (missed active / active)', \
	     f using (column("rank")):(column("fp_rate")*100) with linespoints pt 5 ps 1.2*PSF lc rgb ser(2) title 'false positives (flagged inactive / inactive)', \
	     NaN with points ps 0 title "the paper gives no rate per rank; its OPT-6.7B ranks: 128 (1024 in the last 4 layers)"
} else {
	call 'placeholder.gpi' 'predictor FN / FP rate against rank (recorded trace)' 'results/predictor/eval.csv (rank,fn_rate,fp_rate)' 'make plots (experiments/tinylm.sh: lifsim record, predictor train and eval per rank)'
}
