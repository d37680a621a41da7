# (a) Flash read throughput against chunk size, for several parallelisms.
# Inputs: R/device/m1max-fit.csv (`lifsim device models/devices/m1max-parametric.ini`);
# optional R/host/host.raw.csv (calibrate's raw measurements) and
# R/host/host-fit.csv (`lifsim device` on the fitted host profile).
# Paper points: docs/REFERENCES.md (8 KiB and 16 KiB at 32 threads, 6.1 GB/s sequential).
# One colour per parallelism in both panels; on the host panel a
# parallelism's measured points and its fitted line share that colour.
fit = R.'/device/m1max-fit.csv'
raw = R.'/host/host.raw.csv'
hfit = R.'/host/host-fit.csv'
set multiplot layout 1,2
set logscale x 2
set xlabel 'chunk size (KiB)'
set ylabel 'throughput (GB/s, 10^9 B/s)'
set format x '%g'
set xrange [3.5:4700]
set key top left reverse Left maxrows 7
set title 'M1 Max profile in lifsim (fit through the paper''s points)' font F_TITLE
$paper << EOD
chunk_kib,gbps
8,1.25
16,2.25
EOD
set arrow 1 from graph 0, first 6.1 to graph 1, first 6.1 nohead dt 2 lw 1.5 lc rgb C_PAPER
set label 1 'paper: sequential 1 GiB read, 6.1 GB/s' at graph 0.98, first 6.35 right tc rgb C_PAPER font F_NOTE
set yrange [0:10]
PM = "1 2 4 8 16 32"
plot for [i = 1 : words(PM)] sel(fit, '$2 == '.word(PM, i)) using ($1/1024):($3/1000) with linespoints \
       pt 7 ps 0.7*PSF lc rgb ser(i) title 'lifsim, '.word(PM, i).' outstanding', \
     $paper using 1:2 with points pt 5 ps 2.0*PSF lc rgb C_PAPER title 'paper, 32 threads (8, 16 KiB)'
unset arrow 1; unset label 1; set yrange [*:*]
# the sequential point (calibrate's pattern column), a macro outside the block
NSEQ = !have(raw) ? 0 : int(system(sprintf("awk -F, 'NR > 1 && $9 == \"sequential\"' '%s' | wc -l", raw)))
SEQ = NSEQ > 0 ? "sel(raw, '$9 == \"sequential\"') using ($2/1024):($4*1.048576/1000) with points pt 3 ps 2.2*PSF lw 2 lc rgb 'black' title 'measured, sequential 4 MiB'," : ""
if (have(raw) && have(hfit)) {
	# the parallelisms and engines calibrate measured; a point type per engine
	PS = system(sprintf("awk -F, 'NR > 1 { print $3 }' '%s' | sort -nu | tr '\\n' ' '", raw))
	EN = system(sprintf("awk -F, 'NR > 1 && !seen[$1]++ { print $1 }' '%s' | tr '\\n' ' '", raw))
	PT = "7 6 5 4 9 8"
	set title 'host SSD: calibrate (points) and the fitted model (lines)' font F_TITLE
	set yrange [0:*]
	set offsets 0, 0, graph 0.75, 0
	set key top left reverse Left maxrows 11
	plot for [i = 1 : words(PS)] sel(hfit, '$2 == '.word(PS, i)) using ($1/1024):($3/1000) with lines \
	       lc rgb ser(i) title word(PS, i).' outstanding', \
	     for [e = 1 : words(EN)] for [i = 1 : words(PS)] \
	       sel(raw, '$3 == '.word(PS, i).' && $1 == "'.word(EN, e).'" && $9 != "sequential"') using ($2/1024):($4*1.048576/1000) \
	       with points pt int(word(PT, e)) ps 0.9*PSF lc rgb ser(i) notitle, \
	     for [e = 1 : words(EN)] NaN with points pt int(word(PT, e)) ps 0.9*PSF lc rgb 'black' \
	       title 'measured, '.word(EN, e) noenhanced, \
	     @SEQ \
	     NaN with lines lc rgb 'black' title 'fitted model'
	set offsets 0, 0, 0, 0
} else {
	call 'placeholder.gpi' 'host SSD (calibrate)' 'results/host/host.raw.csv and host-fit.csv' 'make plots (without HOST=no) or: lifsim calibrate --file F -o results/host/host.ini'
}
unset multiplot
