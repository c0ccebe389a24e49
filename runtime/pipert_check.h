/* pipert_check.h — the parts of pipert-check (runtime/pipert_check.c), not
 * part of libpipert.a. */
#ifndef PIPERT_CHECK_H
#define PIPERT_CHECK_H

#include "rt_internal.h"

/* Which file a data header belongs to. */
enum { CHECK_INPUT, CHECK_TARGET, CHECK_EVAL_INPUT, CHECK_EVAL_TARGET };

/* TEMPORARY (pipert_check_data.c): the shape and dtype rules of the data
 * files, until rt_data.c has its own rt_data_check_header for the ranks and
 * this program to share.  Input k (which *_INPUT) of declared shape
 * [rows, dims...] (ndim, dims: the model's declaration after the batch
 * axis), or the targets (k 0).  0, or -1 with the reason in err. */
int check_data_header(const rt_program *p, int ndim, const int64_t *dims, int which, int k,
                      const rt_npy *hdr, char *err, size_t errlen);

/* The hostfile of an nranks-rank job (pipert_check_hosts.c): every problem
 * through report (exit status 2, one line each). */
void check_hostfile(const char *path, int nranks, int oversubscribe,
                    void (*report)(int status, const char *fmt, ...));

/* NULL when path holds one JSON object, else why not (in err). */
const char *json_file_ok(const char *path, char *err, size_t errlen);

/* rt_opts.c compiled a second time with -DRT_CUDA (rt_opts_cuda.c): the
 * options of a --backend cuda program. */
int rt_opts_parse_cuda(rt_opts *o, const rt_program *p, int argc, char **argv,
                       char *err, size_t errlen);
void rt_opts_help_cuda(FILE *f, const rt_program *p, const char *argv0);
void rt_opts_free_cuda(rt_opts *o);

#endif
