# (g) lifsim's predictions against measurements on the host SSD. Input
# (optional until the real-path branch lands): R/validate/validation.csv
# from `lifsim validate EXPERIMENT.ini -o results/validate`, columns
# io_ms_pred, io_ms_meas, io_rel_err, io_rel_err_corr (drift-corrected),
# total_ms_pred, total_ms_meas, total_rel_err (relative errors as fractions).
f = R.'/validate/validation.csv'
if (have(f)) {
	set multiplot layout 1,2
	stats f using (column("io_ms_meas")) nooutput
	n = STATS_records
	lo = STATS_min * 0.7; hi = STATS_max * 1.4
	stats f using (column("io_ms_pred")) nooutput
	lo = (STATS_min * 0.7 < lo) ? STATS_min * 0.7 : lo
	hi = (STATS_max * 1.4 > hi) ? STATS_max * 1.4 : hi
	set title sprintf('I/O per token: lifsim''s prediction against the measurement, %d points', n) font F_TITLE
	set logscale xy
	call 'logtics.gpi' 'x' lo hi
	call 'logtics.gpi' 'y' lo hi
	set xlabel 'measured I/O (ms per token)'
	set ylabel 'predicted I/O (ms per token)'
	set key top left
	set samples 100
	plot '+' using 1:($1*0.8):($1*1.2) with filledcurves fc rgb '#e8e8f8' title '±20% of y = x', \
	     '+' using 1:($1*0.9):($1*1.1) with filledcurves fc rgb '#c8c8f0' title '±10%', \
	     x with lines lc rgb 'black' dt 2 title 'y = x', \
	     f using (column("io_ms_meas")):(column("io_ms_pred")) with points pt 7 ps 1.2*PSF lc rgb C_IO title 'a sweep point (window, parallelism)'
	unset logscale; set xtics autofreq; set ytics autofreq
	set xrange [*:*]; set yrange [*:*]
	stats f using (100 * abs(column("io_rel_err"))) nooutput; emax = STATS_max
	stats f using (100 * abs(column("io_rel_err_corr"))) nooutput; emax = STATS_max > emax ? STATS_max : emax
	stats f using (100 * abs(column("total_rel_err"))) nooutput; emax = STATS_max > emax ? STATS_max : emax
	set xrange [0 : (emax * 1.1 > 25 ? emax * 1.1 : 25)]; set yrange [0:1.15]
	set ytics 0, 0.2, 1
	set title 'cumulative distribution of |error| over the points' font F_TITLE
	# published simulator accuracy for scale (docs/REFERENCES.md)
	set object 1 rect from 6, graph 0 to 18, graph 1 fc rgb '#fbe3e3' fs solid 1.0 noborder behind
	set label 1 "published: MQSim\nagainst real SSDs,\n6-18% error" at 12, graph 0.93 center tc rgb C_PAPER font F_NOTE
	set xlabel '|predicted / measured - 1| (%)'
	set ylabel 'share of points'
	set key bottom right
	set xtics nomirror
	plot f using (abs(column("io_rel_err"))*100):(1.0/n) smooth cumulative with steps lc rgb C_IO title 'I/O', \
	     f using (abs(column("io_rel_err_corr"))*100):(1.0/n) smooth cumulative with steps lc rgb C_IO dt 2 title 'I/O, drift-corrected', \
	     f using (abs(column("total_rel_err"))*100):(1.0/n) smooth cumulative with steps lc rgb C_TOT title 'total'
	unset object 1; unset label 1
	unset multiplot
} else {
	call 'placeholder.gpi' 'predicted against measured I/O on the host SSD, and the CDF of |error|' 'results/validate/validation.csv' 'make plots (without HOST=no), or: lifsim validate experiments/host-validate.ini -o results/validate'
}
