#include "sim/base/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int atomic_open(struct atomic_file *af, const char *path, struct lif_err *err)
{
	snprintf(af->path, sizeof af->path, "%s", path);
	snprintf(af->tmp, sizeof af->tmp, "%s.tmp", path);
	af->fp = fopen(af->tmp, "w");
	if (!af->fp)
		return err_set(err, ERR_IO, "%s: cannot create: %s", af->tmp, strerror(errno));
	return 0;
}

int atomic_commit(struct atomic_file *af, struct lif_err *err)
{
	/* a stream's earlier failed write leaves no errno to trust */
	const char *why = "disk full or I/O error";
	int bad = ferror(af->fp) != 0;
	if (!bad && (fflush(af->fp) || fsync(fileno(af->fp))))
		bad = 1, why = strerror(errno);
	if (fclose(af->fp) != 0 && !bad)
		bad = 1, why = strerror(errno);
	af->fp = NULL;
	if (bad) {
		unlink(af->tmp);
		return err_set(err, ERR_IO, "%s: write failed: %s", af->path, why);
	}
	if (rename(af->tmp, af->path)) {
		int saved = errno;
		unlink(af->tmp);
		return err_set(err, ERR_IO, "%s: cannot rename into place: %s", af->path,
			       strerror(saved));
	}
	/* make the rename itself durable */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", af->path);
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[1] = '\0';
	int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

void atomic_abort(struct atomic_file *af)
{
	if (af->fp) {
		fclose(af->fp);
		af->fp = NULL;
		unlink(af->tmp);
	}
}
