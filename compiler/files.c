/* files.c — the file side of `pipec compile` (files.h): finding the
 * templates and the runtime, writing the output directory all or nothing,
 * and the generated Makefile and launcher.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "files.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Configure's answers (config.h) and the installation directories
 * (compiler/local.mk); the defaults are for a build without them. */
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif
#ifndef PIPEC_TEMPLATEDIR
#define PIPEC_TEMPLATEDIR "/usr/local/share/pipec/templates"
#endif
#ifndef PIPEC_INCLUDEDIR
#define PIPEC_INCLUDEDIR "/usr/local/include"
#endif
#ifndef PIPEC_LIBDIR
#define PIPEC_LIBDIR "/usr/local/lib"
#endif
#ifndef PIPEC_BINDIR
#define PIPEC_BINDIR "/usr/local/bin"
#endif
/* The absolute source and build directories pipec was built in: empty
 * where unknown, and then pipec is always the installed one. */
#ifndef PIPEC_SRCDIR
#define PIPEC_SRCDIR ""
#endif
#ifndef PIPEC_BUILDDIR
#define PIPEC_BUILDDIR ""
#endif
#ifndef PIPEC_MPI_CFLAGS
#define PIPEC_MPI_CFLAGS ""
#endif
#ifndef PIPEC_MPI_LIBS
#define PIPEC_MPI_LIBS "-lmpi"
#endif
#ifndef PIPEC_BLAS_LIBS
#define PIPEC_BLAS_LIBS "-lopenblas"
#endif
#ifndef PIPEC_MPIRUN
#define PIPEC_MPIRUN "mpirun"
#endif
#ifndef PIPEC_CUDA_CFLAGS
#define PIPEC_CUDA_CFLAGS "-I/usr/local/cuda/include"
#endif
#ifndef PIPEC_CUDA_LIBS
#define PIPEC_CUDA_LIBS "-L/usr/local/cuda/lib64 -lcudart -lcublas"
#endif
#ifndef PIPEC_NCCL_LIBS
#define PIPEC_NCCL_LIBS "-lnccl"
#endif
#ifndef PIPEC_SAN_CFLAGS
#define PIPEC_SAN_CFLAGS ""
#endif

/* ---- where the templates and the runtime are ---- */

/* A variable's value, NULL when unset or empty. */
static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Is this process the build tree's compiler/pipec?  The running executable
 * (/proc/self/exe) and that file are the same file.  Without /proc (not
 * Linux) the answer is no: the installed directories, or the variables. */
static int built_here(void)
{
	static int known, here;
	if (!known) {
		struct stat self, built;
		known = 1;
		here = *PIPEC_BUILDDIR && *PIPEC_SRCDIR && stat("/proc/self/exe", &self) == 0
		       && stat(PIPEC_BUILDDIR "/compiler/pipec", &built) == 0
		       && self.st_dev == built.st_dev && self.st_ino == built.st_ino;
	}
	return here;
}

static const char *templates_dir(void)
{
	const char *d = env("PIPEC_TEMPLATES");
	if (!d)
		d = env("PIPEC_PKGDATADIR");    /* the older name, the same meaning */
	return d ? d : built_here() ? PIPEC_SRCDIR "/templates" : PIPEC_TEMPLATEDIR;
}

static const char *runtime_include(void)
{
	const char *d = env("PIPEC_RUNTIME_INCLUDE");
	return d ? d : built_here() ? PIPEC_SRCDIR "/runtime" : PIPEC_INCLUDEDIR;
}

/* The one -L of the generated Makefile.  In the build tree libpipert.a is in
 * runtime/; libpipert_cuda.a beside it, or in runtime/cuda/ if built there. */
static const char *runtime_lib(int cuda)
{
	const char *d = env("PIPEC_RUNTIME_LIB");
	if (d)
		return d;
	if (!built_here())
		return PIPEC_LIBDIR;
	if (cuda && access(PIPEC_BUILDDIR "/runtime/libpipert_cuda.a", F_OK) != 0
	    && access(PIPEC_BUILDDIR "/runtime/cuda/libpipert_cuda.a", F_OK) == 0)
		return PIPEC_BUILDDIR "/runtime/cuda";
	return PIPEC_BUILDDIR "/runtime";
}

/* pipert-check, the runtime's pre-run checker that DIR/run calls: it is
 * built and installed with libpipert.a, so it is found as the runtime is
 * (beside an overridden PIPEC_RUNTIME_LIB when it is there). */
static const char *runtime_check(void)
{
	const char *d = env("PIPEC_RUNTIME_CHECK"), *lib = env("PIPEC_RUNTIME_LIB");
	if (d)
		return d;
	if (lib) {
		const char *beside = xprintf("%s/pipert-check", lib);
		if (access(beside, X_OK) == 0)
			return beside;
	}
	return built_here() ? PIPEC_BUILDDIR "/runtime/pipert-check" : PIPEC_BINDIR "/pipert-check";
}

char *files_template(const char *name)
{
	const char *path = xprintf("%s/%s", templates_dir(), name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_io("cannot read template '%s': %s (set PIPEC_TEMPLATES to the "
		        "templates directory)", path, strerror(errno));
	VEC(char) b = { 0 };
	int ch;
	while ((ch = fgetc(f)) != EOF)
		VEC_PUSH(b, (char)ch);
	fclose(f);
	VEC_PUSH(b, 0);
	return b.v;
}

char *files_substitute(const char *tmpl, const char *const *keys, const char *const *vals,
                       int n)
{
	VEC(char) r = { 0 };
	for (const char *p = tmpl; *p; p++) {
		if (*p == '@') {
			int k;
			for (k = 0; k < n; k++) {
				size_t len = strlen(keys[k]);
				if (!strncmp(p + 1, keys[k], len) && p[1 + len] == '@') {
					for (const char *v = vals[k]; *v; v++)
						VEC_PUSH(r, *v);
					p += len + 1;
					break;
				}
			}
			if (k < n)
				continue;
		}
		VEC_PUSH(r, *p);
	}
	VEC_PUSH(r, 0);
	return r.v;
}

/* ---- the output directory, all or nothing ----
 *
 * A directory that does not exist yet is staged beside it
 * (PARENT/.NAME.pipec-XXXXXX) and renamed into place; in one that exists the
 * files are staged in DIR/.pipec-XXXXXX and moved over one by one.  Until
 * files_commit, the cleanup (at exit, or on SIGINT, SIGTERM, SIGHUP) removes
 * the staged files, the staging directory and the parents pipec created.
 * Its paths are malloc'd, not from the arena that main frees before it
 * returns, and it calls only unlink and rmdir (safe in a signal handler). */

typedef struct Made {
	char *path;             /* the staged file, or a created directory */
	const char *name;       /* a staged file's name in DIR */
	const char *text;       /* its content (arena: for files_commit only) */
	struct Made *next;
} Made;

static struct {
	volatile sig_atomic_t active;
	const char *dir;        /* -o DIR, without trailing slashes */
	char *stage;
	int existed;            /* DIR was there before */
	Made *files;            /* staged files, the latest first */
	Made *parents;          /* directories created, the deepest first */
} st;

static char *keep(const char *s)
{
	char *p = strdup(s);
	if (!p)
		fail_io("out of memory");
	return p;
}

static void push(Made **list, const char *path, const char *name, const char *text)
{
	Made *m = calloc(1, sizeof *m);
	if (!m)
		fail_io("out of memory");
	m->path = keep(path);
	m->name = name;
	m->text = text;
	m->next = *list;
	*list = m;              /* one store: a signal sees the list before or after */
}

static void cleanup(void)
{
	if (!st.active)
		return;
	st.active = 0;
	for (Made *m = st.files; m; m = m->next)
		unlink(m->path);
	if (st.stage)
		rmdir(st.stage);
	for (Made *m = st.parents; m; m = m->next)
		rmdir(m->path);
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* mkdir -p path, each directory it creates recorded for the cleanup. */
static void make_dirs(const char *path)
{
	char *p = xstrdup(path);
	for (char *c = p + 1;; c++) {
		if (*c && *c != '/')
			continue;
		char end = *c;
		*c = 0;
		if (mkdir(p, 0777) == 0)
			push(&st.parents, p, NULL, NULL);
		else if (errno != EEXIST)
			fail_io("cannot create directory '%s': %s", p, strerror(errno));
		if (!end)
			break;
		*c = '/';
	}
}

void files_begin(const char *dir)
{
	char *d = xstrdup(dir);
	for (size_t n = strlen(d); n > 1 && d[n - 1] == '/'; n--)
		d[n - 1] = 0;
	st.dir = d;
	const char *slash = strrchr(d, '/');
	const char *base = slash ? slash + 1 : d;
	const char *parent = slash ? slash == d ? "/" : xstrndup(d, (size_t)(slash - d)) : NULL;
	st.active = 1;
	atexit(cleanup);
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct sigaction old, sa = { 0 };
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			sigaction(sigs[i], &sa, NULL);
	}

	struct stat sb;
	if (!strcmp(base, ".") || !strcmp(base, ".."))
		make_dirs(d);   /* DIR/. or DIR/..: no name to stage beside */
	if (stat(d, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode))
			fail_io("'%s' exists and is not a directory", dir);
		st.existed = 1;
		st.stage = keep(xprintf("%s/.pipec-XXXXXX", d));
		if (!mkdtemp(st.stage)) {
			st.stage = NULL;
			fail_io("cannot write into '%s': %s", dir, strerror(errno));
		}
		return;
	}
	if (lstat(d, &sb) == 0)    /* a dangling symbolic link: rename would replace it */
		fail_io("'%s' exists and is not a directory", dir);
	if (parent)
		make_dirs(parent);
	st.stage = keep(xprintf("%s%s.%s.pipec-XXXXXX", parent ? parent : "",
	                        parent && strcmp(parent, "/") ? "/" : "", base));
	if (!mkdtemp(st.stage)) {
		st.stage = NULL;
		fail_io("cannot create directory '%s': %s", dir, strerror(errno));
	}
	/* mkdtemp makes it 0700; DIR gets what mkdir would give it */
	mode_t mask = umask(0);
	umask(mask);
	chmod(st.stage, 0777 & ~mask);
}

void files_write(const char *name, const char *text, int exec)
{
	const char *path = xprintf("%s/%s", st.stage, name);
	push(&st.files, path, name, text);
	FILE *f = fopen(path, "wb");
	if (!f)
		fail_io("cannot write '%s/%s': %s", st.dir, name, strerror(errno));
	size_t len = strlen(text);
	if (fwrite(text, 1, len, f) != len || fclose(f) != 0)
		fail_io("cannot write '%s/%s'", st.dir, name);
	if (exec)
		chmod(path, 0755);
}

/* Does the file at path hold exactly text? */
static int same_content(const char *path, const char *text)
{
	FILE *old = fopen(path, "rb");
	if (!old)
		return 0;
	size_t len = strlen(text), i = 0;
	int same = 1, ch;
	while (same && (ch = fgetc(old)) != EOF)
		same = i < len && text[i++] == (char)ch;
	fclose(old);
	return same && i == len;
}

void files_commit(void)
{
	if (!st.existed) {
		if (rename(st.stage, st.dir) == 0) {
			st.active = 0;
			return;
		}
		/* created meanwhile by someone else: move the files into it */
		if (errno != EEXIST && errno != ENOTEMPTY)
			fail_io("cannot create directory '%s': %s", st.dir, strerror(errno));
	}
	/* oldest first, so files appear in the order they were written */
	VEC(Made *) order = { 0 };
	for (Made *m = st.files; m; m = m->next)
		VEC_PUSH(order, m);
	for (int i = order.n - 1; i >= 0; i--) {
		Made *m = order.v[i];
		const char *path = xprintf("%s/%s", st.dir, m->name);
		/* keep an unchanged file's timestamp so make does not rebuild it */
		if (same_content(path, m->text))
			unlink(m->path);
		else if (rename(m->path, path) != 0)
			fail_io("cannot write '%s': %s", path, strerror(errno));
	}
	rmdir(st.stage);
	st.active = 0;
}

/* ---- the Makefile and the launcher ---- */

void files_makefile_and_run(const IrModel *m, const Schedule *s, const EmitOptions *eo,
                            const char *ranks)
{
	int cuda = !strcmp(eo->backend, "cuda");
	const char *cc = env("PIPEC_CC");
	const char *sched = sched_label_of(s->kind, s->V, NULL);
	const char *keys[] = { "VERSION", "SOURCE", "DIR", "CC", "SAN_CFLAGS", "RT_INCLUDE",
	                       "RT_LIB", "MPI_CFLAGS", "MPI_LIBS", "BLAS_LIBS", "RANKS",
	                       "NRANKS", "MPIRUN", "MPIRUN_NAME", "MODEL", "SCHEDULE",
	                       "CUDA_CFLAGS", "CUDA_LIBS", "NCCL_LIBS", "CHECK" };
	const char *vals[] = { PACKAGE_VERSION, m->file->name, eo->dir, cc ? cc : "cc",
	                       PIPEC_SAN_CFLAGS, runtime_include(), runtime_lib(cuda),
	                       PIPEC_MPI_CFLAGS, PIPEC_MPI_LIBS, PIPEC_BLAS_LIBS, ranks,
	                       xprintf("%d", s->nranks), PIPEC_MPIRUN, "mpirun", m->name, sched,
	                       PIPEC_CUDA_CFLAGS, PIPEC_CUDA_LIBS, PIPEC_NCCL_LIBS,
	                       runtime_check() };
	int nk = (int)(sizeof keys / sizeof keys[0]);
	/* The rank files are the same for both back ends: only what they link
	 * against differs (libpipert.a or libpipert_cuda.a). */
	files_write("Makefile",
	            files_substitute(files_template(cuda ? "Makefile.cuda.tmpl"
	                                                 : "Makefile.in.tmpl"), keys, vals, nk), 0);
	files_write("run", files_substitute(files_template("run.tmpl"), keys, vals, nk), 1);
}
