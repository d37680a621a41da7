#include "sim/base/path.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Set by the build (Makefile.am): the installed data directory and the trees
 * a binary that has not been installed runs from. */
#ifndef LIFSIM_DATADIR
#define LIFSIM_DATADIR "/usr/local/share/lifsim"
#endif
#ifndef LIFSIM_SRCDIR
#define LIFSIM_SRCDIR ""
#endif
#ifndef LIFSIM_BUILDDIR
#define LIFSIM_BUILDDIR ""
#endif

/* Where each kind's short names live inside a search directory. */
static const char *const kind_subdirs[][3] = {
	[PATH_FILE] = {NULL},
	[PATH_MODEL] = {"models/llms", "llms", NULL},
	[PATH_DEVICE] = {"models/devices", "devices", NULL},
	[PATH_EXPERIMENT] = {"experiments", NULL},
};

static const char *const kind_names[] = {
	[PATH_FILE] = "file",
	[PATH_MODEL] = "model description",
	[PATH_DEVICE] = "device profile",
	[PATH_EXPERIMENT] = "experiment",
};

static int is_dir(const char *p)
{
	struct stat st;
	return p[0] && !stat(p, &st) && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
	struct stat st;
	return !stat(p, &st) && S_ISREG(st.st_mode);
}

/* Append dir unless it is empty-but-not-first, already listed, or no room. */
static void dirs_add(struct path_dirs *d, const char *dir, size_t len)
{
	char want[PATH_CAP], have[PATH_CAP];
	if (d->n == PATH_MAX_DIRS || len >= PATH_CAP)
		return;
	snprintf(want, sizeof want, "%.*s", (int)len, dir);
	const char *w = realpath(want[0] ? want : ".", have) ? have : want;
	for (size_t i = 0; i < d->n; i++) {
		char other[PATH_CAP];
		const char *o = realpath(d->dir[i][0] ? d->dir[i] : ".", other) ? other : d->dir[i];
		if (!strcmp(o, w))
			return;
	}
	snprintf(d->dir[d->n++], PATH_CAP, "%s", want);
}

/* The directory of the running executable, or "" when unknown. */
static void exe_dir(char *out, size_t cap)
{
	char buf[PATH_CAP];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	out[0] = 0;
	if (n <= 0)
		return;
	buf[n] = 0;
	char *slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
	snprintf(out, cap, "%s", buf);
}

/* Does the executable run from the build tree (lifsim, tests/lifsim_tests)? */
static int in_build_tree(const char *exe)
{
	char build[PATH_CAP], tests[PATH_CAP + 8];
	if (!LIFSIM_BUILDDIR[0] || !exe[0] || !realpath(LIFSIM_BUILDDIR, build))
		return 0;
	snprintf(tests, sizeof tests, "%s/tests", build);
	return !strcmp(exe, build) || !strcmp(exe, tests);
}

void path_data_dirs(struct path_dirs *dirs)
{
	char exe[PATH_CAP], rel[PATH_CAP + 32], norm[PATH_CAP];
	exe_dir(exe, sizeof exe);
	if (in_build_tree(exe) && is_dir(LIFSIM_SRCDIR)) {
		dirs_add(dirs, LIFSIM_SRCDIR, strlen(LIFSIM_SRCDIR));
		return;
	}
	snprintf(rel, sizeof rel, "%s/../share/lifsim", exe);
	if (exe[0] && realpath(rel, norm) && is_dir(norm))
		dirs_add(dirs, norm, strlen(norm));
	dirs_add(dirs, LIFSIM_DATADIR, strlen(LIFSIM_DATADIR));
}

void path_dirs_make(struct path_dirs *dirs, const char *first, const char *lifsim_path)
{
	dirs->n = 0;
	first = first ? first : "";
	snprintf(dirs->dir[dirs->n++], PATH_CAP, "%.*s", PATH_CAP - 1, first);
	for (const char *p = lifsim_path; p && *p;) {
		size_t len = strcspn(p, ":");
		if (len)
			dirs_add(dirs, p, len);
		p += len + (p[len] == ':');
	}
	path_data_dirs(dirs);
}

void path_dirs_default(struct path_dirs *dirs, const char *first)
{
	path_dirs_make(dirs, first, getenv("LIFSIM_PATH"));
}

/* Try dir/rel (rel alone for the current directory); 1 when it is a file. */
static int try(const char *dir, const char *rel, char *out, size_t cap)
{
	char cand[2 * PATH_CAP + 2];
	if (dir[0])
		snprintf(cand, sizeof cand, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", rel);
	else
		snprintf(cand, sizeof cand, "%s", rel);
	if (strlen(cand) >= cap || !is_file(cand))
		return 0;
	snprintf(out, cap, "%s", cand);
	return 1;
}

/* Try name in one directory: as a path, then as a short name of kind. */
static int find_in_dir(const char *name, enum path_kind kind, const char *dir, char *out,
		       size_t cap)
{
	if (try(dir, name, out, cap))
		return 1;
	if (strchr(name, '/'))
		return 0;
	size_t len = strlen(name);
	int has_ini = len > 4 && !strcmp(name + len - 4, ".ini");
	for (const char *const *sub = kind_subdirs[kind]; *sub; sub++) {
		char rel[PATH_CAP];
		snprintf(rel, sizeof rel, "%s/%s%s", *sub, name, has_ini ? "" : ".ini");
		if (try(dir, rel, out, cap))
			return 1;
	}
	return 0;
}

/* "no model description 'x' in: ., /a, /b (as DIR/x, DIR/models/llms/x.ini, ...)" */
static int not_found(const char *name, enum path_kind kind, const struct path_dirs *dirs,
		     struct lif_err *err)
{
	char msg[sizeof err->msg];
	size_t used = (size_t)snprintf(msg, sizeof msg, "no %s '%s' in: ", kind_names[kind], name);
	for (size_t i = 0; i < dirs->n && used < sizeof msg; i++)
		used += (size_t)snprintf(msg + used, sizeof msg - used, "%s%s", i ? ", " : "",
					 dirs->dir[i][0] ? dirs->dir[i] : ".");
	if (name[0] != '/' && !strchr(name, '/') && kind != PATH_FILE && used < sizeof msg) {
		size_t len = strlen(name);
		const char *ext = len > 4 && !strcmp(name + len - 4, ".ini") ? "" : ".ini";
		used += (size_t)snprintf(msg + used, sizeof msg - used, " (as DIR/%s", name);
		for (const char *const *sub = kind_subdirs[kind]; *sub && used < sizeof msg; sub++)
			used += (size_t)snprintf(msg + used, sizeof msg - used, ", DIR/%s/%s%s", *sub,
						 name, ext);
		if (used < sizeof msg)
			snprintf(msg + used, sizeof msg - used, "; LIFSIM_PATH adds directories)");
	}
	return err_set(err, ERR_IO, "%s", msg);
}

int path_find_in(const char *name, enum path_kind kind, const struct path_dirs *dirs, char *out,
		 size_t cap, struct lif_err *err)
{
	char found[PATH_CAP];
	if (!name || !name[0])
		return err_set(err, ERR_INVAL, "no %s named (empty name)", kind_names[kind]);
	if (name[0] == '/') { /* as is: its loader names what is wrong with it */
		if (strlen(name) >= cap)
			return err_set(err, ERR_RANGE, "%s: path too long", name);
		snprintf(out, cap, "%s", name);
		return 0;
	}
	for (size_t i = 0; i < dirs->n; i++)
		if (find_in_dir(name, kind, dirs->dir[i], found, sizeof found)) {
			if (strlen(found) >= cap)
				return err_set(err, ERR_RANGE, "%s: path too long", found);
			snprintf(out, cap, "%s", found);
			return 0;
		}
	return not_found(name, kind, dirs, err);
}

int path_find(const char *name, enum path_kind kind, const char *first, char *out, size_t cap,
	      struct lif_err *err)
{
	struct path_dirs *dirs = malloc(sizeof *dirs);
	if (!dirs)
		return err_set(err, ERR_NOMEM, "out of memory");
	path_dirs_default(dirs, first);
	int rc = path_find_in(name, kind, dirs, out, cap, err);
	free(dirs);
	return rc;
}
