/* fuzz_common: what every libFuzzer target shares: the library's start-up,
 * the input written to a file (lifsim's parsers read files), or unpacked into
 * a directory of files (a checkpoint, a tokenizer). */
#ifndef LIFSIM_FUZZ_COMMON_H
#define LIFSIM_FUZZ_COMMON_H

#include <dirent.h>
#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "sim/base/conf.h"
#include "traces/h5attr.h"
#include "traces/trace.h"

/* Where the targets put their files: tmpfs when there is one (nothing
 * reaches a disk), else /tmp. */
static const char *fuzz_tmp(void)
{
	return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

/* 1 when a frame of an ASan report is code built from a C source with debug
 * information ("in FN /path/file.c:LINE:COL"): lifsim's or a target's. The
 * sanitizer runtime (compiler-rt), libFuzzer and libc frames are not (the
 * symbolizer can also misname the interceptor in frame 0 as a libc frame). */
static int fuzz_source_frame(const char *line)
{
	if (strstr(line, "compiler-rt"))
		return 0;
	for (const char *c = strstr(line, ".c:"); c; c = strstr(c + 1, ".c:"))
		if (c[3] >= '0' && c[3] <= '9')
			return 1;
	return 0;
}

/* 1 when every stack of the ASan report r (the access, and where the
 * memory was allocated or freed) starts in libhdf5: its first frame outside
 * with source (fuzz_source_frame) or in libhdf5 is in libhdf5. A
 * stack that starts in lifsim (a buffer lifsim handed to libhdf5) makes it
 * lifsim's. Frames that are neither (interceptors, libc) are skipped. */
static int fuzz_report_in_hdf5(const char *r)
{
	int hdf5 = 0, decided = 1;
	for (const char *l = strstr(r, "    #"); l; l = strstr(l + 1, "    #")) {
		char line[2048];
		const char *e = strchr(l, '\n');
		snprintf(line, sizeof line, "%.*s", (int)(e ? e - l : (long)strlen(l)), l);
		if (!strncmp(line, "    #0 ", 7))
			decided = 0; /* a new stack */
		if (decided)
			continue;
		if (strstr(line, "libhdf5"))
			hdf5 = decided = 1;
		else if (fuzz_source_frame(line))
			return 0;
	}
	return hdf5;
}

static void fuzz_child_report(const char *r)
{
	if (fuzz_report_in_hdf5(r))
		_exit(1);
	if (!strstr(r, "ERROR: AddressSanitizer")) {
		static const char m[] = "fuzz_common.h: this report did not reach the "
					"callback (the sanitizer runtime's report buffer is full?); "
					"it cannot be told from a report in lifsim's code\n";
		ssize_t w = write(2, m, sizeof m - 1);
		(void)w; /* the report's own verdict follows either way */
	}
}

/* The sanitizer runtime copies everything it prints into one 64 KB buffer,
 * the text the report callback (fuzz_child_report) is handed, and only a
 * report empties it. LeakSanitizer prints its table of the suppressions
 * used after each of libFuzzer's leak checks (up to 1000 of them, in the
 * fuzzing process, which never reports): once those fill the buffer, every
 * child forked from it hands the callback old tables, not its report, and a
 * report in libhdf5 ends in a crash- artifact. So the table is not printed
 * (LSAN_OPTIONS can still ask for it). */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}

/* In a child process lifsim forks to read an HDF5 file (h5attr_isolate's
 * reader, kept between inputs; a string attribute), libhdf5 failing under
 * ASan on a corrupt file is what the isolation is for: the parent turns the
 * child's death into an error. Such a child exits right after ASan's
 * report, without libFuzzer's crash- artifact and statistics (its death
 * callback, which the child inherits). A report that stops in lifsim's own
 * code still gets them. */
static void fuzz_child_after_fork(void)
{
	__asan_set_error_report_callback(fuzz_child_report);
}

/* Inputs h5attr_isolate's kept reader serves before a fresh one is forked
 * (README.md says why this many). */
#define FUZZ_READER_READS 10000

static void fuzz_init(void)
{
	static int ready;
	if (!ready) {
		pthread_atfork(NULL, NULL, fuzz_child_after_fork);
		trace_init();
		conf_init();
		/* a read libhdf5 loops on (corrupt metadata) is an error after
		 * 0.2 s, not 30 (h5attr_time_limit) */
		setenv("LIFSIM_HDF5_TIME_LIMIT", "0.2", 0);
		/* libhdf5 keeps what it frees on its free lists, without limit:
		 * each open callocs a metadata cache of about 1 MB, which past
		 * the default limits goes back to the system (under ASan: an
		 * munmap, then fresh pages to fault in and zero at the next
		 * open, most of a trace input's time) */
		H5set_free_list_limits(-1, -1, -1, -1, -1, -1);
		ready = 1;
	}
}

/* A file holding data (one per process, rewritten on each input). */
static const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
	static char path[256];
	if (!path[0])
		snprintf(path, sizeof path, "%s/lifsim-fuzz-%ld%s", fuzz_tmp(), (long)getpid(), suffix);
	fuzz_init();
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	return path;
}

/* An HDF5 file served from memory (h5attr_image): the readers open the
 * returned path, which names no file, and read data through libhdf5's core
 * driver. Unregister with fuzz_h5_done() before data goes away. */
static const char *fuzz_h5(const uint8_t *data, size_t size)
{
	static const char path[] = "/nonexistent/lifsim-fuzz-image.h5";
	fuzz_init();
	/* an old-format input (and a string attribute) is read first in a
	 * child that is kept between inputs, not forked for each (README.md,
	 * "Where an execution's time goes"); here no file is open, where a
	 * fresh one can be forked (after a crash, a time-out, or
	 * FUZZ_READER_READS inputs, which bounds what it accumulates) */
	h5attr_isolate_keep(FUZZ_READER_READS);
	h5attr_image(path, data, size);
	return path;
}

static inline void fuzz_h5_done(void)
{
	h5attr_image(NULL, NULL, 0);
}

/* A directory of files, one per process, emptied and refilled on each input.
 * The input is a sequence of entries, each
 *     1 byte  name length N (0 ends the list)
 *     N bytes the file name (bytes outside [A-Za-z0-9._-] become '_'; an
 *             empty name (cut short), "." and ".." become "_")
 *     4 bytes the data length L, little endian (cut to what is left)
 *     L bytes the data
 * at most FUZZ_DIR_MAX entries; a name given twice keeps the last data.
 * tests/fuzz/pack.py packs a directory this way (the seed corpora). */
#define FUZZ_DIR_MAX 16
static const char *fuzz_dir(const uint8_t *data, size_t size)
{
	static char dir[256];
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "%s/lifsim-fuzz-%ld.d", fuzz_tmp(), (long)getpid());
		if (mkdir(dir, 0700) && access(dir, W_OK))
			abort();
	}
	fuzz_init();
	DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		abort();
	while ((de = readdir(d))) {
		char p[600];
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
			if (unlink(p))
				abort();
		}
	}
	closedir(d);
	size_t at = 0;
	for (int k = 0; k < FUZZ_DIR_MAX && at < size && data[at]; k++) {
		size_t n = data[at++];
		char name[256], path[600];
		if (n > size - at)
			n = size - at;
		for (size_t i = 0; i < n; i++) {
			char c = (char)data[at + i];
			int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
			name[i] = ok ? c : '_';
		}
		name[n] = '\0';
		at += n;
		if (!n || !strcmp(name, ".") || !strcmp(name, ".."))
			strcpy(name, "_");
		uint32_t len = 0;
		for (int i = 0; i < 4 && at < size; i++)
			len |= (uint32_t)data[at++] << (8 * i);
		if (len > size - at)
			len = (uint32_t)(size - at);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		FILE *f = fopen(path, "wb");
		if (!f)
			abort();
		if (len && fwrite(data + at, 1, len, f) != len)
			abort();
		fclose(f);
		at += len;
	}
	return dir;
}

/* Every HDF5 identifier a reader opened is closed again, whatever the input
 * (a handle lifsim leaves open is a crash here, not a leak LeakSanitizer
 * could miss: libhdf5 keeps open identifiers reachable). */
static inline void fuzz_no_open_handles(void)
{
	if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0)
		abort();
}

#endif
