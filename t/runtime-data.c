/* runtime-data.c — rt_data_check_header, the shape rule of a data file,
 * called as a checker that runs before any rank would: no MPI_Init, a
 * header alone (no data).  Each case gives a program, a file kind and a
 * shape, and expects acceptance or a message holding a given phrase.
 * (t/508-runtime-data.t runs it.)
 */
#include <stdlib.h>
#include <string.h>

#include "../runtime/rt_internal.h"
#include "tap.h"

static rt_npy hdr(int type, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
	rt_npy a;
	memset(&a, 0, sizeof a);
	a.type = type;
	a.ndim = ndim;
	a.dims[0] = d0;
	a.dims[1] = d1;
	a.dims[2] = d2;
	return a;
}

/* want NULL: accepted; else refused with `want` in the message. */
static void check(const rt_program *p, int which, int k, rt_npy a, const char *want,
                  const char *desc)
{
	char err[512] = "";
	int rc = rt_data_check_header(p, which, k, &a, err, sizeof err);
	if (!want)
		ok(rc == 0, "%s: accepted%s%s", desc, rc ? " — but: " : "", rc ? err : "");
	else if (!ok(rc != 0 && strstr(err, want), "%s: refused saying \"%s\"", desc, want))
		printf("# got %d \"%s\"\n", rc, err);
}

int main(void)
{
	static const int64_t in_dims[] = { 2, 4 }, out_dims[] = { 2, 2 };
	static const rt_input_desc inputs[] = {
		{ "ids", RT_DT_I32, 8, 1, 50, "token id" },
		{ "feat", RT_DT_F32, 6, 0, 0, "value" },
	};
	rt_program mlp, inf, mse, seq;
	memset(&mlp, 0, sizeof mlp);
	mlp.batch = 16;
	mlp.in_width = 8;
	mlp.in_dims = in_dims;
	mlp.in_ndim = 2;
	mlp.out_width = 4;
	mlp.loss = RT_LOSS_CROSS_ENTROPY;
	mlp.target_dtype = RT_DT_I32;
	mlp.target_width = 1;
	mlp.optim = RT_OPTIM_SGD;
	inf = mlp;
	inf.optim = RT_OPTIM_NONE;
	inf.loss = RT_LOSS_NONE;
	mse = mlp;
	mse.loss = RT_LOSS_MSE;
	mse.target_dtype = RT_DT_F32;
	mse.target_width = 4;
	mse.out_dims = out_dims;
	mse.out_ndim = 2;
	seq = mlp;
	seq.batch = 4;
	seq.inputs = inputs;
	seq.ninputs = 2;
	seq.seq_max = 8;
	seq.loss = RT_LOSS_NEXT_TOKEN;

	check(&mlp, RT_DATA_INPUT, 0, hdr(RT_NPY_F32, 2, 88, 8, 0), NULL, "[88, 8] input, B 16");
	check(&mlp, RT_DATA_INPUT, 0, hdr(RT_NPY_F64, 3, 88, 2, 4), NULL, "[88, 2, 4] input");
	check(&mlp, RT_DATA_INPUT, 0, hdr(RT_NPY_F32, 3, 88, 4, 2),
	      "input of shape [N, 2, 4] or [N, 8] (N >= 16 rows) expected, found [88, 4, 2]",
	      "[88, 4, 2] input");
	check(&mlp, RT_DATA_INPUT, 0, hdr(RT_NPY_F32, 2, 15, 8, 0), "(N >= 16 rows)",
	      "fewer rows than a batch");
	check(&mlp, RT_DATA_INPUT, 0, hdr(RT_NPY_F32, 1, 88, 0, 0), "found [88]", "a 1-D input");
	check(&mlp, RT_DATA_EVAL_INPUT, 0, hdr(RT_NPY_F32, 2, 5, 8, 0), NULL,
	      "a 5-row evaluation input");
	check(&mlp, RT_DATA_EVAL_INPUT, 0, hdr(RT_NPY_F32, 2, 0, 8, 0),
	      "evaluation input of shape [N, 2, 4] or [N, 8] (N >= 1 rows)", "an empty evaluation input");
	check(&inf, RT_DATA_INPUT, 0, hdr(RT_NPY_F32, 2, 5, 8, 0), NULL,
	      "inference: 5 rows (a padded batch)");
	check(&mlp, RT_DATA_TARGET, 0, hdr(RT_NPY_I64, 1, 88, 0, 0), NULL, "[88] int64 class ids");
	check(&mlp, RT_DATA_TARGET, 0, hdr(RT_NPY_I32, 2, 88, 1, 0), NULL, "[88, 1] class ids");
	check(&mlp, RT_DATA_TARGET, 0, hdr(RT_NPY_F32, 1, 88, 0, 0),
	      "class ids: expected integer data (int32 or int64), found float32", "float class ids");
	check(&mlp, RT_DATA_EVAL_TARGET, 0, hdr(RT_NPY_I32, 2, 7, 2, 0),
	      "evaluation targets of shape [N] or [N, 1]", "[7, 2] evaluation class ids");
	check(&mse, RT_DATA_TARGET, 0, hdr(RT_NPY_F32, 2, 16, 4, 0), NULL, "[16, 4] mse targets");
	check(&mse, RT_DATA_TARGET, 0, hdr(RT_NPY_F32, 3, 16, 2, 2), NULL,
	      "mse targets in the output's shape [16, 2, 2]");
	check(&mse, RT_DATA_TARGET, 0, hdr(RT_NPY_F32, 2, 16, 5, 0),
	      "targets of shape [N, 2, 2] or [N, 4]", "mse targets of another width");
	check(&seq, RT_DATA_INPUT, 0, hdr(RT_NPY_I64, 2, 6, 5, 0), NULL, "[6, 5] ids, B 4");
	check(&seq, RT_DATA_INPUT, 0, hdr(RT_NPY_I32, 2, 6, 9, 0),
	      "a sequence of 9 tokens is longer than the model's 8", "ids longer than seq_max");
	check(&seq, RT_DATA_INPUT, 0, hdr(RT_NPY_F32, 2, 6, 5, 0),
	      "token ids are integers (int32 or int64), found float32", "float ids");
	check(&seq, RT_DATA_INPUT, 0, hdr(RT_NPY_I32, 2, 6, 1, 0),
	      "next-token training needs sequences of at least 2 tokens", "one-token sequences");
	check(&seq, RT_DATA_EVAL_INPUT, 0, hdr(RT_NPY_I32, 2, 1, 5, 0), NULL, "one evaluation sequence");
	check(&seq, RT_DATA_INPUT, 0, hdr(RT_NPY_I32, 2, 3, 5, 0),
	      "input 'ids' is sequences of shape [N, T] (N >= 4 rows, 1 <= T <= 8), found [3, 5]",
	      "3 sequences, B 4");
	check(&seq, RT_DATA_INPUT, 1, hdr(RT_NPY_F32, 2, 6, 6, 0), NULL, "a float input of `inputs`");
	check(&seq, RT_DATA_EVAL_INPUT, 1, hdr(RT_NPY_F32, 2, 6, 7, 0),
	      "evaluation input 'feat' of shape [N, 6]", "a float input of another width");
	check(&seq, RT_DATA_INPUT, 2, hdr(RT_NPY_F32, 2, 6, 6, 0), "the model has 2 inputs",
	      "an input index beyond the program's");
	seq.gen_tokens = 3;          /* a generating program trains nothing */
	seq.optim = RT_OPTIM_NONE;
	check(&seq, RT_DATA_INPUT, 0, hdr(RT_NPY_I32, 2, 4, 5, 0), NULL, "generate: 4 prompts, B 4");
	/* continuous batching: any number of prompts through the B slots */
	check(&seq, RT_DATA_INPUT, 0, hdr(RT_NPY_I32, 2, 8, 5, 0), NULL, "generate: 8 prompts, B 4");
	check(&seq, RT_DATA_INPUT, 0, hdr(RT_NPY_I32, 2, 3, 5, 0), NULL, "generate: 3 prompts, B 4");
	return done_testing();
}
