# (b) s_agg(k) and the incremental load per token against the window k.
# Inputs: R/stats/opt-6.7b.csv, R/stats/falcon-7b.csv (`lifsim stats` of the
# synthetic traces); R/paper-windowing/results.csv (lifsim with the modeled
# predictor, and the paper's points as ref_*); optional R/stats/recorded.csv
# (`lifsim stats` of the recorded small-model trace).
opt = R.'/stats/opt-6.7b.csv'
fal = R.'/stats/falcon-7b.csv'
rec = R.'/stats/recorded.csv'
win = R.'/paper-windowing/results.csv'
have_rec = have(rec)
curve(f, m) = sel(f, sprintf('$1 == "%s" && $2 == "all" && $3 <= 16', m))
# the recorded trace's curves, only when it exists (a macro: no empty plot)
REC_S = have_rec ? "curve(rec, 's_agg_frac') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc 3 title 'recorded small model'," : ""
REC_L = have_rec ? "curve(rec, 'load_frac_per_token') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc 3 title 'recorded small model'," : ""
set multiplot layout 1,2
set xlabel 'window k (tokens)'
set xrange [0:16.5]
set key top left font ',9'
if (!have_rec) {
	set label 1 "recorded small-model trace: not available yet\n(lifsim record, then lifsim stats -o results/stats/recorded.csv)" at graph 0.98, graph 0.64 right font ',8' tc rgb '#d62728' noenhanced
}
set yrange [0:40]
set key top right
set title 's_{agg}(k): share of FFN neurons active in k tokens'
set ylabel 'neurons (% of the FFN)'
plot curve(opt, 's_agg_frac') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc 1 title 'OPT-6.7B synthetic trace', \
     curve(fal, 's_agg_frac') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc 2 title 'Falcon-7B synthetic trace', \
     @REC_S \
     win using (column("window")):(column("window_frac")*100) with points pt 9 ps 1.8*PSF lc 4 title 'lifsim, predicted sets (window held)', \
     win using (column("window")):(column("ref_window_frac")*100) with points pt 5 ps 1.5*PSF lc rgb C_PAPER title 'paper: window held (OPT k=5, Falcon k=4)'
set yrange [0:6]
set key top right
set title 'incremental load per token with the last k tokens resident'
set ylabel 'loaded per token (% of the FFN)'
unset label 1
plot curve(opt, 'load_frac_per_token') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc 1 title 'OPT-6.7B synthetic trace', \
     curve(fal, 'load_frac_per_token') using 3:($5*100) with linespoints pt 7 ps 0.6*PSF lc 2 title 'Falcon-7B synthetic trace', \
     @REC_L \
     win using (column("window")):(column("load_frac_per_token")*100) with points pt 9 ps 1.8*PSF lc 4 title 'lifsim, modeled predictor', \
     win using (column("window")):(column("ref_load_frac_per_token")*100) with points pt 5 ps 1.5*PSF lc rgb C_PAPER title 'paper (OPT k=5, Falcon k=4)'
unset multiplot
