/* costmodel.h — the `model` cost: FLOPs at a rate, bytes over a link. */
#ifndef PIPEC_COSTMODEL_H
#define PIPEC_COSTMODEL_H

#include "partition.h"
#include "schedule.h"

/* Seconds per action of s for model m: F, B, W, R from the stage's FLOPs
 * per micro-batch at cc->flops; messages cost latency + bytes/bandwidth;
 * the optimizer touches every parameter (3 passes over 4-byte floats). */
SimCost *cost_model(const IrModel *m, const Schedule *s, const CostConsts *cc);

/* ---- --cost: one parser for every command that prices a schedule ----
 *   model                  cost_model() with the constants of --flops etc.
 *   uniform                simcost_uniform()
 *   times(F = a, B = b, W = c, comm = d[, mem_B = x, mem_W = y])
 *                          every stage the same times; a message arrives at
 *                          its sender's end + comm, no rank busy for it
 *   FILE.json              the same per stage: {"F": [...], "B": [...],
 *                          "W": [...], "comm": [...], "mem_B": [...],
 *                          "mem_W": [...]} (S entries, or one number for all)
 *   gpu(flops = X, bandwidth = Y, latency = Z, efficiency = E[,
 *       mem_bandwidth = M])
 *                          the model cost on a device this machine is not:
 *                          FLOP/s X x E, link Y bytes/s, Z s a message */
typedef enum { COST_MODEL, COST_UNIFORM, COST_TIMES, COST_FILE, COST_GPU } CostKind;

typedef struct CostOption {
	CostKind kind;
	const char *text;       /* as given */
	CostConsts cc;          /* model, gpu: the constants in effect (the
	                         * partition balances with these too) */
	int n;                  /* times: 1; file: entries (1 = every stage) */
	double *f, *b, *w, *comm;       /* [n] (w, comm: 0 when not given) */
	double *mem_b, *mem_w;  /* [n] or NULL: not given */
} CostOption;

/* Parses the text of --cost; base holds the constants --flops, --bandwidth
 * ... gave.  Returns 0; or 2 with *why set when the text is malformed (a
 * command-line error); or 1 with *why when FILE.json cannot be read or is
 * not of the form above (bad input).  *why is one line, without "pipec: ". */
int cost_option_parse(const char *text, const CostConsts *base, CostOption *o,
                      const char **why);

/* The cost of schedule s (lowered or not: its S, P, R, split and placement
 * are used) under option o; m is needed by model and gpu (and for nothing
 * else).  NULL with *why when o does not fit s (a FILE.json whose arrays
 * have neither 1 nor S entries). */
SimCost *cost_from_option(const CostOption *o, const IrModel *m, const Schedule *s,
                          const char **why);

/* What one micro-batch of each of the S stages keeps from its F to its B
 * (mem_b) and from its B to its W (mem_w): the option's mem_B / mem_W where
 * given, else the model's activation bytes and half of mem_b. */
void cost_act_memory(const CostOption *o, const IrModel *m, int S, double *mem_b,
                     double *mem_w);

/* What sched_generate() needs of the costs for spec: zb-auto searches its
 * order for them, priced on the shape it will have (one stage a rank,
 * split backward): sets spec->cost, mem_b and mem_w.  Other kinds are
 * left as they are.  Returns 0, or -1 with *why when o does not fit. */
int cost_prepare_spec(SchedSpec *spec, const CostOption *o, const IrModel *m,
                      const char **why);

/* `pipec check`'s summary. */
void check_summary(FILE *out, const IrModel *m);

#endif
