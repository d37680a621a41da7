# (a) Flash read throughput against chunk size, for several parallelisms.
# Inputs: R/device/m1max-fit.csv (`lifsim device models/devices/m1max-parametric.ini`);
# optional R/host/host.raw.csv (calibrate's raw measurements) and
# R/host/host-fit.csv (`lifsim device` on the fitted host profile).
# Paper points: docs/REFERENCES.md (8 KiB and 16 KiB at 32 threads, 6.1 GB/s sequential).
fit = R.'/device/m1max-fit.csv'
raw = R.'/host/host.raw.csv'
hfit = R.'/host/host-fit.csv'
set multiplot layout 1,2
set logscale x 2
set xlabel 'chunk size (KiB)'
set ylabel 'throughput (GB/s, 10^9 B/s)'
set format x '%g'
set key top center horizontal maxcols 4 font ',9'
set title 'M1 Max: lifsim profile (fit through the paper points)'
$paper << EOD
chunk_kib,gbps
8,1.25
16,2.25
EOD
set arrow 1 from graph 0, first 6.1 to graph 1, first 6.1 nohead dt 2 lc rgb C_PAPER
set label 1 'paper: sequential 1 GiB read, 6.1 GB/s' at graph 0.03, first 6.35 tc rgb C_PAPER font ',9'
set yrange [0:8.6]
plot for [p in "1 2 4 8 16 32"] sel(fit, '$2 == '.p) using ($1/1024):($3/1000) with linespoints pt 7 ps 0.5*PSF title 'lifsim, '.p.' outst.', \
     $paper using 1:2 with points pt 5 ps 1.8*PSF lc rgb C_PAPER title 'paper, 32 threads'
unset arrow 1; unset label 1; set yrange [*:*]
if (have(raw) && have(hfit)) {
	# the parallelisms calibrate measured
	PS = system(sprintf("awk -F, 'NR > 1 { print $3 }' '%s' | sort -nu | tr '\\n' ' '", raw))
	set title 'host SSD: calibrate measurements (points) and fitted model (lines)'
	plot for [p in PS] sel(hfit, '$2 == '.p) using ($1/1024):($3/1000) with lines title 'fit, '.p, \
	     for [p in PS] sel(raw, '$3 == '.p) using ($2/1024):($4*1.048576/1000) with points pt 6 ps PSF title 'measured, '.p
} else {
	call 'placeholder.gpi' 'host SSD (calibrate)' 'results/host/host.raw.csv and host-fit.csv' 'lifsim calibrate --file F -o results/host/host.ini (real-path branch)'
}
unset multiplot
