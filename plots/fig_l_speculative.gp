# (l) Speculative decoding from flash: ms per emitted token against the draft
# length, one line per acceptance rate, OPT-125M drafting for OPT-6.7B on the
# M1 Max profile (Table 3's all-techniques configuration). Input:
# R/speculative/results.csv (`lifsim sweep experiments/speculative.ini`).
# Columns: 3 spec_lambda, 4 spec_alpha (the swept parameters).
f = R.'/speculative/results.csv'
set title "OPT-125M drafts, OPT-6.7B verifies from flash (M1 Max, fp32, k = 5)" font ',11'
set xlabel 'drafted tokens per step (lambda)'
set ylabel 'ms per emitted token'
set xrange [-0.3:8.3]
set yrange [0:*]
set xtics (0, 1, 2, 4, 8)
set key top left font ',10'
a(A) = sel(f, sprintf('$4 == %s', A))
plot a("0.5") using (column("spec_lambda")):(column("total_ms")) with linespoints pt 7 ps 0.6*PSF lc rgb C_IO title 'alpha 0.5: total', \
     a("0.7") using (column("spec_lambda")):(column("total_ms")) with linespoints pt 5 ps 0.6*PSF lc rgb C_MEM title 'alpha 0.7: total', \
     a("0.9") using (column("spec_lambda")):(column("total_ms")) with linespoints pt 9 ps 0.6*PSF lc rgb C_CMP title 'alpha 0.9: total', \
     a("0.9") using (column("spec_lambda")):(column("io_ms")) with linespoints dt 2 pt 8 ps 0.6*PSF lc rgb C_CMP title 'alpha 0.9: I/O only'
