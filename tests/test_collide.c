/* Runs that collide (issue 13): a sweep locks its output directory, merge
 * refuses to write into an input, files must be regular files. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static const char *experiment(const char *name)
{
	char text[4096];
	snprintf(text, sizeof text,
		 "[experiment]\nmodel = %s\ndevice = %s\ntrace = synth\n[synth]\ntokens = 30\n"
		 "[sim]\nwindow = 0, 3\n",
		 tu_src("tests/data/tiny.ini"), tu_src("models/devices/m1max.ini"));
	return tu_write(name, text);
}

Test(collide, a_second_sweep_into_a_locked_directory_names_the_holder)
{
	char out[8192], dir[1024], lock[1100];
	const char *x = experiment("x.ini");
	snprintf(dir, sizeof dir, "%s", tu_path("res"));
	snprintf(lock, sizeof lock, "%s/.lock", dir);
	cr_assert_eq(mkdir(dir, 0777), 0);
	int fd = open(lock, O_RDWR | O_CREAT, 0666); /* this test holds it, as a sweep does */
	cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
	cr_assert_eq(write(fd, "4242\n", 5), 5);
	cr_expect_eq(tu_lifsim(out, sizeof out, "-q sweep %s -o %s", x, dir), 1, "%s", out);
	cr_expect(strstr(out, "another sweep (pid 4242) is writing into this directory"), "%s", out);
	close(fd);
	/* released: the sweep runs and leaves no lock file behind */
	cr_expect_eq(tu_lifsim(out, sizeof out, "-q sweep %s -o %s", x, dir), 0, "%s", out);
	cr_expect_neq(access(lock, F_OK), 0);
}

Test(collide, merge_refuses_to_write_into_one_of_its_inputs)
{
	char out[8192], a[1024], b[1024], before[64] = "", after[64] = "";
	const char *x = experiment("x.ini");
	snprintf(a, sizeof a, "%s", tu_path("s0"));
	snprintf(b, sizeof b, "%s", tu_path("s1"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q sweep %s -o %s --shard 0/2", x, a), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q sweep %s -o %s --shard 1/2", x, b), 0, "%s", out);
	char res[1100];
	snprintf(res, sizeof res, "%s/results.csv", a);
	struct stat st;
	cr_assert_eq(stat(res, &st), 0);
	snprintf(before, sizeof before, "%lld", (long long)st.st_size);
	cr_expect_eq(tu_lifsim(out, sizeof out, "merge %s %s -o %s/.", a, b, a), 1, "%s", out);
	cr_expect(strstr(out, "is the input directory"), "%s", out);
	cr_assert_eq(stat(res, &st), 0);
	snprintf(after, sizeof after, "%lld", (long long)st.st_size);
	cr_expect_str_eq(before, after);
}

Test(collide, a_directory_or_device_given_as_an_experiment_is_refused)
{
	char out[8192];
	cr_expect_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s", tu_tmpdir(), tu_path("r")), 1,
		     "%s", out);
	cr_expect(strstr(out, "is a directory, not a file"), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "sweep /dev/zero -o %s", tu_path("r")), 1, "%s", out);
	cr_expect(strstr(out, "/dev/zero: is not a regular file"), "%s", out);
}
