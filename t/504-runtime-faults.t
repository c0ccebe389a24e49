#!/bin/sh
# Faults: a rank that dies or stalls must not leave the others hanging.
# PIPERT_FAULT=KIND:RANK:STEP:ACTION makes one rank of the two-rank fixture
# kill itself (SIGKILL), exit, or stall at one action; a job stopped by
# SIGTERM ends at once; --check-messages catches tags that lie.
. "$(dirname "$0")/runtime-lib.sh"

build_fixture fx
build_fixture fx2 -DREPLICAS=2
build_fixture swap -DSWAP_TAGS
build_fixture short -DSHORT_SEND
build_fixture wrong -DWAIT_WRONG

# timed NAME NRANKS FIXTURE OPTIONS...: run_fixture, setting $st and $took.
timed() {
	t_name=$1 t_n=$2 t_fx=$3
	shift 3
	start=$(date +%s)
	run_fixture "$t_fx" "$t_n" "$T/$t_name" "$@"
	st=$?
	took=$(($(date +%s) - start))
}
show() { { echo "status $st after ${took}s; stderr:"; head -n 12 "$T/$1.err"; } | diag; }

PIPERT_FAULT=kill:1:2:3 timed kill 2 fx --steps 5 --timeout 60
export PIPERT_FAULT=
[ $st -ne 0 ] && [ $took -lt 20 ]
r=$?
ok $r "a rank killed mid-step (SIGKILL) ends the job, non-zero, within seconds"
[ $r -eq 0 ] || show kill

PIPERT_FAULT=exit:0:2:2 timed exit 2 fx --steps 5 --timeout 60
export PIPERT_FAULT=
[ $st -ne 0 ] && [ $took -lt 20 ]
r=$?
ok $r "a rank that exits mid-step ends the job, non-zero, within seconds"
[ $r -eq 0 ] || show exit

# Rank 1 stalls at its second action of step 2 (F of micro-batch 0, after
# receiving it); rank 0 sent micro-batches 0 and 1 and waits for the
# gradient of micro-batch 0.
PIPERT_FAULT=stall:1:2:1 timed stall 2 fx --steps 5 --timeout 2
export PIPERT_FAULT=
grep -q "rank 0: timed out after 2 s waiting for RECV_B stage 0 mb 0 (peer 1)" "$T/stall.err"
[ $? -eq 0 ] && [ $st -eq 3 ] && [ $took -lt 20 ]
r=$?
ok $r "a stalled rank: its peer times out after --timeout 2 naming rank, action and peer, exit 3"
[ $r -eq 0 ] || show stall
grep "timed out" "$T/stall.err" | diag

# Rank 2 (replica 1 of stage 0) stalls before its allreduce.
PIPERT_FAULT=stall:2:1:16 timed stall2 4 fx2 --steps 3 --timeout 2
export PIPERT_FAULT=
grep -q "rank 0: timed out after 2 s waiting for ALLREDUCE stage 0 (peer ranks 2)" "$T/stall2.err"
[ $? -eq 0 ] && [ $st -eq 3 ] && [ $took -lt 20 ]
r=$?
ok $r "a replica stalled before the allreduce: the other copy of its stage times out naming it"
[ $r -eq 0 ] || show stall2

# SIGTERM to the launcher stops every rank (here: a job stalled for good).
start=$(date +%s)
PIPERT_FAULT=stall:1:1:0 timeout 120 $MPIRUN $MPIRUN_FLAGS -np 1 "$T/fx.r0" --timeout 100 : \
	-np 1 "$T/fx.r1" --timeout 100 >"$T/term.out" 2>"$T/term.err" &
pid=$!
sleep 3
kill -TERM $pid
wait $pid
st=$?
took=$(($(date +%s) - start))
[ $st -ne 0 ] && [ $took -lt 20 ]
r=$?
ok $r "SIGTERM to mpirun stops every rank promptly, non-zero"
[ $r -eq 0 ] || show term

timed swapok 2 swap --steps 2
[ $st -eq 0 ]
ok $? "swapped tags pass unnoticed without --check-messages (MPI matches them)"
timed swapchk 2 swap --steps 2 --check-messages
grep -q "rank 1: message check failed for RECV_F stage 1 mb 2 (peer 0): expected SEND_F stage 0 mb 2, .*got SEND_F stage 0 mb 3" "$T/swapchk.err"
[ $? -eq 0 ] && [ $st -eq 3 ]
r=$?
ok $r "--check-messages catches a message sent under another micro-batch's tag"
[ $r -eq 0 ] || show swapchk

timed wrongchk 2 wrong --steps 2 --check-messages
grep -q "message check failed for RECV_F stage 1 mb 3 (peer 0): expected SEND_F stage 0 mb 2, .*got SEND_F stage 0 mb 3" "$T/wrongchk.err"
[ $? -eq 0 ] && [ $st -eq 3 ]
r=$?
ok $r "--check-messages catches a receive waited on in another micro-batch's action"
[ $r -eq 0 ] || show wrongchk

timed short 2 short --steps 2
grep -q "rank 1: RECV_F stage 1 mb 1: received 252 bytes from rank 0, expected 256" "$T/short.err"
[ $? -eq 0 ] && [ $st -eq 3 ]
r=$?
ok $r "a message shorter than the receive is an error naming the action, even without --check-messages"
[ $r -eq 0 ] || show short

done_testing
