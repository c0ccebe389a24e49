/* costmodel.h — the `model` cost: FLOPs at a rate, bytes over a link. */
#ifndef PIPEC_COSTMODEL_H
#define PIPEC_COSTMODEL_H

#include "partition.h"
#include "schedule.h"

/* Seconds per action of s for model m: F, B, W, R from the stage's FLOPs
 * per micro-batch at cc->flops; messages cost latency + bytes/bandwidth;
 * the optimizer touches every parameter (3 passes over 4-byte floats). */
SimCost *cost_model(const IrModel *m, const Schedule *s, const CostConsts *cc);

/* `pipec check`'s summary. */
void check_summary(FILE *out, const IrModel *m);

#endif
