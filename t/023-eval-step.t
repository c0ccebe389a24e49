#!/bin/sh
# 023-eval-step.t -- every training program gets an evaluation step: each
# bundled and test model (models/*.pipe, t/models/*.pipe), as written and
# under every training schedule, with replicas, recompute and bf16, compiles
# (so the evaluation step's schedule, memory plan and step programs pass
# the verifiers; an internal error exits 3), and every rank file then has
# eval_step() with .eval_nactions its number of actions, tags of direction
# 2 (RT_TAG_DIR_EVAL) in it and in no training step, and forward calls
# only; a program that does not train has none.  The evaluation step's
# order is checked against the placement in t/step-unit.c and
# t/011-programs.t.
. "$(dirname "$0")/lib.sh"
verified=0 refused=0 bad="" shape="" none=""
# check DIR: every rank file of a training program has its evaluation step
check() {
	for f in "$1"/rank*.c; do
		if grep -q '\.loss = RT_LOSS_NONE' "$f"; then
			grep -q 'eval_step' "$f" && none="$none $f"
			continue
		fi
		awk '
			/^\/\* ==== evaluation/ { ev = 1 }
			/^static const rt_program program/ { ev = 0 }
			/RT_TAG\(/ {
				s = $0
				while (match(s, /RT_TAG\([0-9]+, [0-9]+, [0-9]+\)/)) {
					t = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
					d = t; sub(/.*, /, "", d); sub(/\)/, "", d)
					if ((d == 2) != ev) bad_tag = 1
				}
			}
			ev && /rt_begin\(c, RT_OP_/ {
				n++
				if ($0 !~ /RT_OP_(F|RECV_F|SEND_F),/) bad_op = 1
			}
			/static void eval_step\(rt_ctx \*c, int batch\)/ { fn = 1 }
			/\.eval_step = eval_step, \.eval_nactions = / {
				want = $0; sub(/.*eval_nactions = /, "", want); sub(/,.*/, "", want)
			}
			END { exit !(fn && n > 0 && want == n && !bad_tag && !bad_op) }
		' "$f" || shape="$shape $f"
	done
}
n=0
for model in "$PIPEC_SRC"/models/*.pipe "$PIPEC_SRC"/t/models/*.pipe; do
	for v in "" schedule=naive schedule=gpipe schedule=1f1b "schedule=interleaved(2)" \
	         schedule=zb-h1 schedule=zb-v schedule=pipedream schedule=pipedream-2bw \
	         "schedule=interleaved-zb(2);partition=auto" "schedule=looped-bfs(2);partition=auto" \
	         "schedule=dualpipev;partition=auto" \
	         replicas=2 dtype=bf16 "stages=2;partition=auto;recompute=[0.5, 1]"; do
		n=$((n + 1))
		d="$T/p$n"
		set --
		old_ifs=$IFS
		IFS=';'
		for s in $v; do set -- "$@" --set "$s"; done
		IFS=$old_ifs
		"$PIPEC" compile "$model" "$@" -o "$d" >/dev/null 2>"$T/err"
		rc=$?
		case $rc in
		0) verified=$((verified + 1)); check "$d" ;;
		1) refused=$((refused + 1)) ;;     # the model does not allow it: sema's error
		*) bad="$bad $(basename "$model")[$v]:$rc"; diag "$(head -2 "$T/err")" ;;
		esac
		rm -rf "$d"
	done
done
diag "$verified programs compiled, $refused configurations refused by the model's checks"
ok "every compile of a model that accepts the configuration succeeds (failed:${bad:- none})" \
	test -z "$bad"
ok "training programs have eval_step with its action count, forward calls and evaluation tags only (bad:${shape:- none})" \
	test -z "$shape"
ok "programs that do not train have no eval_step (bad:${none:- none})" test -z "$none"
ok "enough of them compiled to mean something ($verified)" test "$verified" -ge 80
done_testing
