# (d) Flash layouts compared: bytes read and reads per token (independent of
# the parallelism) and I/O time across the parallelism. Input:
# R/layouts/results.csv (`lifsim sweep experiments/layouts.ini`). The paper
# publishes no layout comparison beyond Table 2's bundling row.
# Layouts whose curves coincide (rowcol, coact and hot on the synthetic
# trace) are drawn with their own colour, point type and dash, and the
# panel says by how much they differ (computed from the results).
f = R.'/layouts/results.csv'
one = sel(f, '$4 == 32')
LAYOUTS = "separate rowcol friends coact hot"
PTS = "7 5 9 4 12"
DTS = "1 1 4 2 3"
set multiplot title 'OPT-6.7B synthetic trace, modeled predictor, window 5, adjacent reads merged, M1 Max profile' font F_TITLE
# three panels, the last (the curves and their key) twice as wide
set size 0.27, 0.94; set origin 0, 0
set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9 relative
set xtics rotate by -30 nomirror
set title 'bytes read per token' font F_TITLE
set ylabel 'GB per token (10^9 B)'
stats one using (column("bytes_read_per_token")/1e9) nooutput
set key top left
set yrange [0:STATS_max*1.45]
plot one using (column("bytes_read_per_token")/1e9):xtic(strcol("layout")) lc rgb C_IO title 'read', \
     one using (column("useful_bytes_per_token")/1e9) lc rgb C_CMP title 'of which used'
set origin 0.27, 0
set title 'reads per token (after merging)' font F_TITLE
set ylabel 'reads per token (thousands)'
unset key
set yrange [*:*]
stats one using (column("reads_per_token")/1000) nooutput
set yrange [0:STATS_max*1.2]
plot one using (column("reads_per_token")/1000):xtic(strcol("layout")) lc rgb C_IO notitle, \
     one using 0:(column("reads_per_token")/1000):(sprintf('%.1f', column("reads_per_token")/1000)) \
       with labels offset 0,0.7 font F_LAB notitle
# how far apart the three coinciding layouts are, for the note
set yrange [*:*]
spread = 0
do for [P in "1 2 4 8 16 32"] {
	stats sel(f, '$4 == '.P.' && ($3 == "rowcol" || $3 == "coact" || $3 == "hot")') using (column("io_ms")) nooutput
	spread = (STATS_max / STATS_min - 1 > spread) ? STATS_max / STATS_min - 1 : spread
}
set style data linespoints
set xtics norotate
set size 0.46, 0.94; set origin 0.54, 0
set title 'I/O time per token' font F_TITLE
set xlabel 'outstanding reads (parallelism)'
set ylabel 'I/O (ms per token)'
set logscale x 2
set logscale y
call 'logtics.gpi' 'y' 40 12000
set xrange [0.85:38]
set key top right width -4
# rowcol, coact and hot drawn 8% apart along x (dodged) so each is seen
DODGE = "1 0.92 1 1 1.08"
plot for [i = 1 : words(LAYOUTS)] sel(f, sprintf('$3 == "%s"', word(LAYOUTS, i))) \
       using (column("parallelism") * real(word(DODGE, i))):(column("io_ms")) with linespoints dt int(word(DTS, i)) lw 1.5 \
       pt int(word(PTS, i)) ps 1.0 * PSF lc rgb ser(i) title word(LAYOUTS, i), \
     NaN with points ps 0 title sprintf("rowcol, coact, hot: I/O within %.1f%%,", 100 * spread), \
     NaN with points ps 0 title 'drawn 8% apart along x'
unset multiplot
