#!/bin/sh
# 002-check-models.t — `pipec check` accepts every bundled model, and sweeps
# of --set over stages, partition, schedules and the other keys give the
# summary they ask for (stage rows, and the stages' parameters adding up to
# the model's).
. "$(dirname "$0")/lib.sh"

# stage_rows: the number of rows of check's per-stage table in $out.
stage_rows() {
	printf '%s\n' "$out" | awk '/^  stage +rank/ { on = 1; next } on && /^  [0-9]/ { n++ }
		END { print n + 0 }'
}

# params_add_up: the per-stage parameters sum to the model's total.
params_add_up() {
	printf '%s\n' "$out" | awk '
		NR == 1 { for (i = 1; i <= NF; i++) if ($(i + 1) == "parameters") { t = $i; gsub(",", "", t) } }
		/^  stage +rank/ { on = 1; next }
		on && /^  [0-9]/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9,]+$/) break
		                    p = $i; gsub(",", "", p); s += p }
		END { exit !(t != "" && s == t) }'
}

n=0
for f in "$PIPEC_SRC"/models/*.pipe; do
	name=$(basename "$f")
	n=$((n + 1))
	run_pipec check "$f"
	is "$rc" 0 "$name: check exits 0"
	is "$err" "" "$name: nothing on stderr"
	like "$out" "^.*$name: model [A-Za-z_0-9]+, [0-9]+ layers, [0-9,]+ parameters" \
		"$name: the summary's first line"
	if params_add_up; then pass "$name: stage parameters add up to the model's"; else
		fail "$name: stage parameters add up to the model's"; printf '%s\n' "$out" | diag; fi

	# stages = 1..4 with an automatic partition.  A schedule read from a
	# file fixes the number of ranks: any other is an error naming the file.
	file_p=
	if grep -Eq '^ *schedule *= *file\(' "$f"; then
		file_p=$(sed -n 's/^ *stages *= *\([0-9]*\).*/\1/p' "$f")
	fi
	for p in 1 2 3 4; do
		run_pipec check "$f" --set stages=$p --set partition=auto
		if [ -n "$file_p" ] && [ "$p" != "$file_p" ]; then
			is "$rc" 1 "$name --set stages=$p: its schedule file has $file_p ranks, exit 1"
			like "$err" "the file has $file_p pipeline ranks, but the pipeline has stages = $p" \
				"$name --set stages=$p: says why"
			continue
		fi
		if [ "$name" = deep-narrow.pipe ] && [ $p = 3 ]; then
			# interleaved needs M % P == 0: 8 micro-batches on 3 ranks do not split
			is "$rc" 1 "$name --set stages=3: interleaved's M % P rule fails, exit 1"
			like "$err" "interleaved needs microbatches \(8\) to be a multiple of stages \(3\)" \
				"$name --set stages=3: says why"
			continue
		fi
		is "$rc" 0 "$name --set stages=$p --set partition=auto: exit 0"
		v=$(printf '%s\n' "$out" | sed -n 's/.*pipeline: [0-9]* stages\{0,1\} x \([0-9]*\) virtual.*/\1/p')
		is "$(stage_rows)" $((p * ${v:-1})) "$name --set stages=$p: $((p * ${v:-1})) stage rows"
		if params_add_up; then pass "$name --set stages=$p: parameters add up"; else
			fail "$name --set stages=$p: parameters add up"; printf '%s\n' "$out" | diag; fi
	done
done
[ $n -ge 3 ] && pass "there are at least 3 bundled models ($n)" || fail "at least 3 bundled models ($n)"

# The two published Llama-family configurations: pipec's count against one
# computed here from their config.json values, and against the published
# figure.  llama_params VOCAB D LAYERS HEADS KV_HEADS FFN QKV_BIAS: the token
# table (tied: the head adds none), per layer two RMSNorm weights [d], q and
# o [d, d], k and v [kv_heads·d/heads, d], with qkv_bias their biases, gate,
# up and down [ffn, d]; then the final norm [d].
llama_params() {
	kvw=$(($2 * $5 / $4))
	layer=$((2 * $2 + 2 * $2 * $2 + 2 * kvw * $2 + 3 * $6 * $2 + $7 * ($2 + 2 * kvw)))
	echo $(($1 * $2 + $3 * layer + $2))
}
with_commas() {
	printf '%s\n' "$1" | awk '{ s = $0; r = ""
		while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
		print s r }'
}
while read -r file published vocab d layers heads kv ffn bias; do
	want=$(llama_params "$vocab" "$d" "$layers" "$heads" "$kv" "$ffn" "$bias")
	is "$want" "$published" "$file: its config gives $published parameters"
	run_pipec check "$PIPEC_SRC/models/$file"
	like "$out" "model [a-z0-9_]+, $((layers + 3)) layers, $(with_commas "$want") parameters" \
		"$file: pipec check counts $(with_commas "$want") parameters in $((layers + 3)) layers"
	# its generating pipeline: 4 stages of layers/4 blocks, 8 slots, caches
	# of 256 + 256 positions, kv_heads·d/heads floats wide for keys and values
	kv=$((2 * layers / 4 * 8 * 512 * d * kv / heads * 4))
	for s in 0 1 2 3; do
		like "$out" "kv cache stage $s: $(with_commas $kv) bytes" \
			"$file: stage $s's key/value cache is $(with_commas $kv) bytes (kv_heads wide)"
	done
done <<'EOF'
llama-3.2-1b.pipe 1235814400 128256 2048 16 32 8 8192 0
qwen2-0.5b.pipe 494032768 151936 896 24 14 2 4864 1
EOF

# Sweeps over the other keys, on the 4-stage MLP.
MLP=$PIPEC_SRC/models/mlp4.pipe
while IFS='|' read -r want sets; do
	[ -n "$want" ] || continue
	eval "set -- $sets"
	run_pipec check "$MLP" "$@"
	is "$rc" 0 "mlp4 $sets: exit 0"
	like "$out" "$want" "mlp4 $sets: the summary says /$want/"
done <<'EOF'
schedule naive,|--set schedule=naive
schedule gpipe,|--set schedule=gpipe
schedule 1f1b,|--set schedule=1f1b
4 stages x 2 virtual.*schedule interleaved\(2\)|--set 'schedule=interleaved(2)' --set partition=auto
schedule zb-h1,|--set schedule=zb-h1
4 stages x 2 virtual.*schedule zb-v|--set schedule=zb-v --set partition=auto
schedule pipedream,|--set schedule=pipedream
schedule pipedream-2bw,|--set schedule=pipedream-2bw
schedule inference, inference only|--set schedule=inference --set optimizer=none
= 1 micro-batch of 256 rows|--set microbatches=1
= 256 micro-batches of 1 rows|--set microbatches=256
2 replicas \(8 ranks\), batch 256 = 2 x 4 micro-batches|--set replicas=2 --set microbatches=4
\(recompute 2\)|--set 'recompute=[0.5, 0.5, 0.5, 0.5]'
adam\(lr = 0.001\)|--set 'optimizer=adam(lr = 1e-3)'
sgd\(lr = 0.1, momentum = 0.9\)|--set 'optimizer=sgd(lr = 0.1, momentum = 0.9)'
partition: auto|--set partition=auto --set memory=16GiB
partition: as written|--set 'partition=[1, 1, 1, 12]'
^ +3 +3 +act7 .. head |--set 'partition { stage 0 : fc1; stage 1 : act1 .. fc4; stage 2 : act4 .. fc7; stage 3 : act7 .. head; }'
^ +1 +1 +head |--set stages=2 --set 'partition = { stage 0 : fc1 .. act7; stage 1 : head; }'
15 layers|--set dtype=bf16 --set steps=3 --set seed=7
adamw\(lr = 0.0003, weight_decay = 0.01\)|--set 'optimizer=adamw(lr = 3e-4)'
adam\(lr = 0.001, beta1 = 0.8, beta2 = 0.95, eps = 1e-06, weight_decay = 0.1\)|--set 'optimizer=adam(lr = 1e-3, beta1 = 0.8, beta2 = 0.95, eps = 1e-6, weight_decay = 0.1)'
sgd\(lr = 0.1, momentum = 0.9, weight_decay = 0.0005, nesterov = true\)|--set 'optimizer=sgd(lr = 0.1, momentum = 0.9, weight_decay = 5e-4, nesterov = true)'
training: lr_schedule = cosine\(warmup = 2, total = 20, min_lr = 0.001\), clip_grad_norm = 1, decay = matrices, shuffle = true|--set 'lr_schedule=cosine(warmup = 2, min_lr = 1e-3)' --set clip_grad_norm=1.0 --set decay=matrices --set shuffle=true
training: lr_schedule = linear\(warmup = 0, total = 7, min_lr = 0\)|--set steps=7 --set lr_schedule=linear
training: lr_schedule = constant\(warmup = 5\)|--set 'lr_schedule=constant(warmup = 5)'
training: clip_grad_norm = 0.5|--set schedule=pipedream-2bw --set clip_grad_norm=0.5
EOF

# Without the training keys there is no training line (and the emitted
# files are as before: scripts/emit-sums.sh).
run_pipec check "$MLP" --set lr_schedule=constant --set shuffle=false
unlike "$out" "training:" "mlp4 with lr_schedule=constant, shuffle=false: no training line"

# The training keys reach every rank file's rt_program, the horizon
# resolved to the steps; a program without them has none of the fields.
fields() {
	sed -n '/^static const rt_program program = {/,/^};/p' "$1"
}
run_pipec compile "$MLP" -o "$T/plain"
unlike "$(fields "$T/plain/rank0.c")" "weight_decay|lr_schedule|clip_grad_norm" \
	"mlp4 as written: no training fields in rank0.c"
like "$(fields "$T/plain/rank0.c")" "\.beta1 = 0\.9, \.beta2 = 0\.999, \.eps = 1e-8," \
	"... and Adam's constants as before"
run_pipec compile "$MLP" -o "$T/train" --set 'optimizer=adamw(lr = 3e-4, beta2 = 0.95)' \
	--set 'lr_schedule=cosine(warmup = 2, min_lr = 1e-5)' --set clip_grad_norm=1.0 \
	--set decay=matrices --set shuffle=true --set steps=30
is "$rc" 0 "mlp4 with every training key compiles"
for r in 0 3; do
	f=$(fields "$T/train/rank$r.c")
	like "$f" "\.optim = RT_OPTIM_ADAMW, \.lr = 0\.0002999" "rank$r: .optim = RT_OPTIM_ADAMW"
	like "$f" "\.beta1 = 0\.90*2, \.beta2 = 0\.9499" "rank$r: beta2 = 0.95 from the source"
	like "$f" "\.weight_decay = 0\.01, \.nesterov = 0, \.decay_matrices = 1," \
		"rank$r: adamw's weight decay, decay = matrices"
	like "$f" "\.lr_schedule = RT_LR_COSINE, \.lr_warmup = 2, \.lr_total = 30, \.min_lr = [0-9.]*e-0?5," \
		"rank$r: cosine, warm-up 2, horizon = steps = 30"
	like "$f" "\.clip_grad_norm = 1, \.shuffle = 1," "rank$r: .clip_grad_norm = 1, .shuffle = 1"
done
desc=$(cat "$T/train/program.desc")
like "$desc" "^optim adamw$" "program.desc says adamw, as the ranks do"
like "$desc" "^shuffle 1$" "program.desc says shuffle 1, as the ranks do"
run_pipec compile "$MLP" -o "$T/sgd" \
	--set 'optimizer=sgd(lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 1e-4)' \
	--set 'lr_schedule=linear(warmup = 3, total = 50, min_lr = 0.01)'
f=$(fields "$T/sgd/rank1.c")
like "$f" "\.optim = RT_OPTIM_SGD, \.lr = 0\.1000*0*[0-9]*, \.momentum = 0\.9" "rank1.c: sgd"
like "$f" "\.weight_decay = 0\.0001[0-9]*, \.nesterov = 1, \.decay_matrices = 0," \
	"rank1.c: weight decay 1e-4, nesterov"
like "$f" "\.lr_schedule = RT_LR_LINEAR, \.lr_warmup = 3, \.lr_total = 50, \.min_lr = 0\.01," \
	"rank1.c: linear(warmup = 3, total = 50, min_lr = 0.01)"
# pipedream-2bw clips: the verifier runs its stream with every rank's
# OPTIM as one collective
run_pipec compile "$MLP" -o "$T/2bw" --set schedule=pipedream-2bw --set clip_grad_norm=0.25
is "$rc" 0 "pipedream-2bw with clip_grad_norm compiles (its OPTIM collective cannot deadlock)"
like "$(fields "$T/2bw/rank2.c")" "\.clip_grad_norm = 0\.25," "... rank2.c: .clip_grad_norm = 0.25"
run_pipec compile "$MLP" -o "$T/pd" --set schedule=pipedream --set clip_grad_norm=0.25
is "$rc" 1 "pipedream with clip_grad_norm: exit 1"
like "$err" "schedule 'pipedream' never has one" "... with the reason"
if [ ! -e "$T/pd" ]; then pass "... and nothing written"; else fail "... and nothing written"; fi

# A 10,000-layer model, written out layer by layer: checking is linear in
# the layers (it took over a minute when boundary sizes were recounted per
# layer), so a minute is generous even under the sanitizers.
awk 'BEGIN {
	print "model big {\n    input x : f32[batch, 64];\n    target y : i32[batch];"
	for (i = 0; i < 9999; i++)
		if (i % 2 == 0) printf "    layer fc%d : linear(64, 64);\n", i
		else printf "    layer act%d : relu;\n", i
	print "    layer head : linear(64, 10);\n    loss cross_entropy;\n}"
	print "pipeline { stages = 4; batch = 64; microbatches = 8; optimizer = sgd(lr = 0.01); }"
}' >"$T/big.pipe"
start=$(date +%s)
run_pipec check "$T/big.pipe"
secs=$(($(date +%s) - start))
is "$rc" 0 "a 10,000-layer model checks (in ${secs} s)"
like "$out" "model big, 10000 layers, 20,800,650 parameters" "... 10,000 layers, 20,800,650 parameters"
is "$(stage_rows)" 4 "... in 4 stages"

done_testing
