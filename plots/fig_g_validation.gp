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
	set title sprintf('I/O per token, %d sweep points', n)
	set logscale xy
	set xrange [lo:hi]; set yrange [lo:hi]
	set xlabel 'measured I/O (ms per token)'
	set ylabel 'predicted I/O (ms per token)'
	set key top left font ',9'
	set samples 100
	plot '+' using 1:($1*0.8):($1*1.2) with filledcurves fc rgb '#e8e8f8' title '±20%', \
	     '+' using 1:($1*0.9):($1*1.1) with filledcurves fc rgb '#c8c8f0' title '±10%', \
	     x with lines lc rgb 'black' dt 2 title 'y = x', \
	     f using (column("io_ms_meas")):(column("io_ms_pred")) with points pt 7 ps 0.8*PSF lc rgb C_IO title 'sweep point'
	unset logscale; set xrange [*:*]; set yrange [0:1]
	set title 'cumulative distribution of |error|'
	set xlabel '|predicted / measured - 1| (%)'
	set ylabel 'share of points'
	set key bottom right
	plot f using (abs(column("io_rel_err"))*100):(1.0/n) smooth cumulative with steps lc rgb C_IO title 'I/O', \
	     f using (abs(column("io_rel_err_corr"))*100):(1.0/n) smooth cumulative with steps lc rgb C_IO dt 2 title 'I/O, drift-corrected', \
	     f using (abs(column("total_rel_err"))*100):(1.0/n) smooth cumulative with steps lc rgb C_TOT title 'total'
	unset multiplot
} else {
	call 'placeholder.gpi' 'predicted against measured I/O on the host SSD, and the CDF of |error|' 'results/validate/validation.csv' 'lifsim validate experiments/host-validate.ini -o results/validate (real-path branch)'
}
