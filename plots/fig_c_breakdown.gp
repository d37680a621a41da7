# (c) Latency per token by part (I/O, memory management, compute), lifsim
# beside the paper's v3 Tables 2 and 3. Inputs: R/paper-table2/results.csv and
# R/paper-table3/results.csv (`lifsim sweep experiments/paper-table{2,3}.ini`);
# the paper's numbers are their ref_* columns. Table 2 publishes I/O only.
t2 = R.'/paper-table2/results.csv'
t3 = R.'/paper-table3/results.csv'
label(r) = r eq 'naive' ? 'naive' : r eq 'hybrid' ? 'hybrid' : r eq 'predictor' ? '+predictor' : \
	r eq 'windowing' ? '+windowing' : r eq 'bundling' ? '+bundling' : r eq 'all' ? 'all techniques' : r
w = 0.36
set title "OPT-6.7B on the M1 Max profile: left (hatched) bar of each pair = paper, right bar = lifsim\nTable 2 (fp16; the paper gives I/O only; numbers are I/O ms)     |     Table 3 (CPU, fp32 compute; numbers are total ms)" font F_TITLE
set ylabel 'latency per token (ms)'
set xrange [-0.6:7.5]
set yrange [0:3900]
set xtics nomirror
set key at graph 0.5, graph 0.97 center top
set arrow 1 from 4.85, graph 0 to 4.85, graph 1 nohead dt 3 lc rgb '#888888'
x2(c) = column(c)
x3(c) = column(c) + 5.8
set boxwidth w
plot \
  t2 using (x2("point")):(0):xtic(label(strcol("row"))) with points ps 0 notitle, \
  t3 using (x3("point")):(0):xtic(label(strcol("row"))) with points ps 0 notitle, \
  t2 using (x2("point")+w/2):(column("io_ms")+column("mem_ms")+column("compute_ms")) with boxes lc rgb C_CMP title 'compute', \
  t2 using (x2("point")+w/2):(column("io_ms")+column("mem_ms")) with boxes lc rgb C_MEM title 'memory management', \
  t2 using (x2("point")+w/2):(column("io_ms")) with boxes lc rgb C_IO title 'I/O (flash)', \
  t2 using (x2("point")-w/2):(column("ref_io_ms")) with boxes fs pattern 4 border -1 lc rgb C_IO title 'paper (hatched; its numbers in red)', \
  t2 using (x2("point")+w/2):(column("total_ms")):(sprintf('I/O %.0f', column("io_ms"))) with labels offset 0,0.7 font F_LAB notitle, \
  t2 using (x2("point")-w/2):(column("ref_io_ms")):(sprintf('%.0f', column("ref_io_ms"))) with labels offset 0,0.7 font F_LAB tc rgb C_PAPER notitle, \
  t3 using (x3("point")+w/2):(column("io_ms")+column("mem_ms")+column("compute_ms")) with boxes lc rgb C_CMP notitle, \
  t3 using (x3("point")+w/2):(column("io_ms")+column("mem_ms")) with boxes lc rgb C_MEM notitle, \
  t3 using (x3("point")+w/2):(column("io_ms")) with boxes lc rgb C_IO notitle, \
  t3 using (x3("point")-w/2):(column("ref_io_ms")+column("ref_mem_ms")+column("ref_compute_ms")) with boxes fs pattern 4 border -1 lc rgb C_CMP notitle, \
  t3 using (x3("point")-w/2):(column("ref_io_ms")+column("ref_mem_ms")) with boxes fs pattern 4 border -1 lc rgb C_MEM notitle, \
  t3 using (x3("point")-w/2):(column("ref_io_ms")) with boxes fs pattern 4 border -1 lc rgb C_IO notitle, \
  t3 using (x3("point")+w/2):(column("total_ms")):(sprintf('%.0f', column("total_ms"))) with labels offset 0,0.7 font F_LAB notitle, \
  t3 using (x3("point")-w/2):(column("ref_total_ms")):(sprintf('%.0f', column("ref_total_ms"))) with labels offset 0,0.7 font F_LAB tc rgb C_PAPER notitle
