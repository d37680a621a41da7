# (b) s_agg(k) and the incremental load per token against the window k.
# Inputs: R/stats/opt-6.7b.csv, R/stats/falcon-7b.csv (`lifsim stats` of the
# synthetic traces); R/paper-windowing/results.csv (lifsim with the modeled
# predictor, and the paper's points as ref_*); optional R/stats/recorded.csv
# (`lifsim stats` of the recorded small-model trace).
# Two kinds of quantity share the axes, told apart in the key: the curves are
# the traces' true activations; the large markers are with the predictor's
# predicted sets (true active minus misses plus false positives), which is
# what the paper's numbers are (OPT at k=5, Falcon at k=4), so they sit above
# the curves. A model keeps its colour: squares paper, triangles lifsim.
opt = R.'/stats/opt-6.7b.csv'
fal = R.'/stats/falcon-7b.csv'
rec = R.'/stats/recorded.csv'
win = R.'/paper-windowing/results.csv'
have_rec = have(rec)
curve(f, m) = sel(f, sprintf('$1 == "%s" && $2 == "all" && $3 <= 16', m))
C_OPT = ser(1); C_FAL = ser(3); C_REC = ser(4)
# the recorded trace's curves, only when it exists (a macro: no empty plot)
REC_S = have_rec ? "curve(rec, 's_agg_frac') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc rgb C_REC title 'small recorded model, true activations'," : ""
REC_L = have_rec ? "curve(rec, 'load_frac_per_token') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc rgb C_REC title 'small recorded model, true activations'," : ""
ROW(r) = sel(win, sprintf('$3 == "%s"', r))
set multiplot layout 1,2
set xlabel 'window k (tokens)'
set xrange [-0.3:16.5]
set xtics 2
if (!have_rec) {
	set label 1 "recorded small-model trace: not available yet\n(lifsim record, then lifsim stats -o results/stats/recorded.csv)" at graph 0.98, graph 0.08 right font F_NOTE tc rgb C_PAPER noenhanced
}
set yrange [0:72]
set ytics 10
set key top left reverse Left width -2
set title 's_{agg}(k): FFN neurons active at least once in k tokens' font F_TITLE
set ylabel 'neurons (% of the FFN)'
plot curve(opt, 's_agg_frac') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc rgb C_OPT title 'OPT-6.7B synthetic trace, true activations', \
     curve(fal, 's_agg_frac') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc rgb C_FAL title 'Falcon-7B synthetic trace, true activations', \
     @REC_S \
     ROW("opt") using (column("window")):(column("ref_window_frac")*100) with points pt 5 ps 2.2*PSF lc rgb C_OPT title 'paper, OPT k=5: window held (predicted sets)', \
     ROW("opt") using (column("window")):(column("window_frac")*100) with points pt 8 ps 2.4*PSF lw 2 lc rgb C_OPT title 'lifsim, OPT k=5: the same, modeled predictor', \
     ROW("falcon") using (column("window")):(column("ref_window_frac")*100) with points pt 5 ps 2.2*PSF lc rgb C_FAL title 'paper, Falcon k=4: window held (predicted sets)', \
     ROW("falcon") using (column("window")):(column("window_frac")*100) with points pt 8 ps 2.4*PSF lw 2 lc rgb C_FAL title 'lifsim, Falcon k=4: the same, modeled predictor'
unset label 1
set yrange [0:10.5]
set ytics 1
set xlabel 'window k (tokens; k = 0: nothing resident, the whole active set)'
set title 'incremental load per token, the last k tokens resident' font F_TITLE
set ylabel 'loaded per token (% of the FFN)'
set key top right noreverse Right
plot curve(opt, 'load_frac_per_token') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc rgb C_OPT title 'OPT-6.7B, true activations', \
     curve(fal, 'load_frac_per_token') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc rgb C_FAL title 'Falcon-7B, true activations', \
     @REC_L \
     ROW("opt") using (column("window")):(column("ref_load_frac_per_token")*100) with points pt 5 ps 2.2*PSF lc rgb C_OPT title 'paper, OPT k=5 (predicted sets)', \
     ROW("opt") using (column("window")):(column("load_frac_per_token")*100) with points pt 8 ps 2.4*PSF lw 2 lc rgb C_OPT title 'lifsim, OPT k=5 (modeled predictor)', \
     ROW("falcon") using (column("window")):(column("ref_load_frac_per_token")*100) with points pt 5 ps 2.2*PSF lc rgb C_FAL title 'paper, Falcon k=4 (predicted sets)', \
     ROW("falcon") using (column("window")):(column("load_frac_per_token")*100) with points pt 8 ps 2.4*PSF lw 2 lc rgb C_FAL title 'lifsim, Falcon k=4 (modeled predictor)'
unset multiplot
