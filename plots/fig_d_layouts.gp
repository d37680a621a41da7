# (d) Flash layouts compared: bytes read and reads per token (independent of
# the parallelism) and I/O time across the parallelism. Input:
# R/layouts/results.csv (`lifsim sweep experiments/layouts.ini`). The paper
# publishes no layout comparison beyond Table 2's bundling row.
f = R.'/layouts/results.csv'
one = sel(f, '$4 == 32')
set multiplot layout 1,3 title 'OPT-6.7B synthetic, modeled predictor, window 5, merged reads, M1 Max profile' font ',11'
set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9 relative
set xtics rotate by -30 font ',10'
set title 'bytes read per token'
set ylabel 'GB per token (10^9 B)'
stats one using (column("bytes_read_per_token")/1e9) nooutput
set key top left font ',9'
set yrange [0:STATS_max*1.35]
plot one using (column("bytes_read_per_token")/1e9):xtic(strcol("layout")) lc rgb C_IO title 'read', \
     one using (column("useful_bytes_per_token")/1e9) lc rgb C_CMP title 'of which used'
set title 'reads per token (after merging)'
set ylabel 'reads per token (thousands)'
unset key
set yrange [0:*]
plot one using (column("reads_per_token")/1000):xtic(strcol("layout")) lc rgb C_IO notitle
set style data linespoints
set xtics norotate
set title 'I/O time per token'
set xlabel 'outstanding reads (parallelism)'
set ylabel 'I/O (ms per token)'
set logscale xy 2
set yrange [*:*]
set format y '%g'
set key top right font ',9'
plot for [L in "separate rowcol friends coact hot"] sel(f, sprintf('$3 == "%s"', L)) using (column("parallelism")):(column("io_ms")) pt 7 ps 0.6*PSF title L
unset multiplot
