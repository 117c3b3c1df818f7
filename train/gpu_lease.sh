#!/usr/bin/env bash
# One short GPU lease spent on the compact LLIC, in one call (docs/training.md "Short leases").
#
#   OUT=$OUT DATA=.data/bsds300 BUDGET_S=500 bash train/gpu_lease.sh
#
# The lent machine has JAX but neither TensorFlow nor a package registry, and it sees only
# the working tree: copy the photos into the git-ignored `.data/` and carry it. Each λ
# trains in its own process, one after another, each on an equal share of what is left of
# the budget: on an H200 one model per step ran 2.3× faster per model than three vmapped
# side by side (docs/benchmarks.md), and JAX's compilation cache lets the later processes
# skip the compilation the first one paid for (λ is an argument of the step, not a constant).
# What comes back in $OUT: `sweep/params_<λ>.msgpack` (float16), `sweep/log.jsonl`,
# `sweep.txt`, `profile.txt` when PROFILE=1, and `lease.txt` (device, versions, timings).
# Back home, per λ: `python -m train.lambda_sweep --to-workdir $OUT/sweep/params_<λ>.msgpack
# WD --data bsds300`, then `llic export --workdir WD --out W --float16`.
#
# Settings (environment): DATA; LMBDAS (space-separated); INIT (weights or workdirs to start
# from: one per λ, or one for every λ; by default the bundled models of those λ, so a lease
# continues the shipped curve); BATCH (crops of PATCH² per step; 16 × 256² feeds as many
# pixels as session 8's 64 × 128²); DOWNSCALE (integer box downscale of the photos before
# cropping; 1 since session 9, docs/results-history.md "Session 9"); BUDGET_S (wall
# clock of all λ together, compilation and PROFILE included); PROFILE=1 (first a profiled
# step of the same shapes, time by kernel and by model part: it pays the compilation that
# the sweep then loads from the cache, so it costs ~20 s more); SWEEP_ARGS (more flags for
# train.lambda_sweep, e.g. "--lr 1e-4 --warmup 50").
# JAX's GPU default lets convolutions round their inputs to TF32, as PyTorch's cuDNN
# convolutions do by default: on an H200 a 16×256² step takes 35–37 ms and compiles in
# 51 s, against 62–65 ms and 88–102 s with JAX_DEFAULT_MATMUL_PRECISION=highest (true
# float32; docs/training.md "Short leases").
# A lease of 900 s fits two calls (at most 600 s each): the second, made while the machine is
# still warm (it idles out after ~30 s), finds the first one's compilation cache in /tmp.
# KEEP_CACHE=1 brings that cache back in $OUT/jax-cache: carried as .data/jax-cache with
# JAX_COMPILATION_CACHE_DIR=.data/jax-cache, it spares a later lease on the same card and
# JAX version its first compilation (51 s at 16×256² on an H200), if it fits the carry limit.
set -euo pipefail

: "${OUT:?set OUT to the folder that comes back}"
DATA=${DATA:-.data/bsds300}
LMBDAS=${LMBDAS:-0.0035 0.0067 0.013}
ASSETS=llic_jax/assets
INIT=${INIT:-$ASSETS/llic-elic-compact-q2.safetensors $ASSETS/llic-elic-compact-q3.safetensors $ASSETS/llic-elic-compact-q4.safetensors}
BATCH=${BATCH:-16}
PATCH=${PATCH:-256}
DOWNSCALE=${DOWNSCALE:-1}
BUDGET_S=${BUDGET_S:-500}
PROFILE=${PROFILE:-0}
KEEP_CACHE=${KEEP_CACHE:-0}
SWEEP_ARGS=${SWEEP_ARGS:-}
PY=${PY:-python3}
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/llic-jax-cache}

read -r -a lmbdas <<< "$LMBDAS"
read -r -a inits <<< "$INIT"
if [[ ! -d $DATA ]]; then
  echo "error: no image folder $DATA (copy ../shared/data/bsds300 there and carry it)" >&2
  exit 2
fi
if (( ${#inits[@]} != 1 && ${#inits[@]} != ${#lmbdas[@]} )); then
  echo "error: INIT names ${#inits[@]} sources for ${#lmbdas[@]} λ (give 1 or one per λ)" >&2
  exit 2
fi
mkdir -p "$OUT"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  $PY -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, jax.devices(), 'precision', jax.config.jax_default_matmul_precision)" || true
} > "$OUT/lease.txt" 2>&1

start=$SECONDS
if [[ $PROFILE == 1 ]]; then
  # The sweep's own shapes, so that the sweep loads this compilation from the cache.
  $PY -m eval.profile_train_step --model llic-elic-compact --models 1 --data "$DATA" \
    --downscale "$DOWNSCALE" --batch "$BATCH" --patch "$PATCH" --steps 3 --top 25 \
    > "$OUT/profile.txt" 2>&1 || true
  echo "profile: $((SECONDS - start)) s" >> "$OUT/lease.txt"
fi

status=ok
for i in "${!lmbdas[@]}"; do
  init=${inits[i]:-${inits[0]}}
  share=$(( (BUDGET_S - (SECONDS - start)) / (${#lmbdas[@]} - i) ))
  share=$(( share < 0 ? 0 : share ))
  began=$SECONDS
  # shellcheck disable=SC2086  # SWEEP_ARGS is a list on purpose
  $PY -m train.lambda_sweep --data "$DATA" --init "$init" --lmbdas "${lmbdas[$i]}" \
    --batch "$BATCH" --patch "$PATCH" --downscale "$DOWNSCALE" --budget-s "$share" --report-every 50 \
    --save-every-s 60 --save-dtype float16 --out "$OUT/sweep" $SWEEP_ARGS 2>&1 \
    | tee -a "$OUT/sweep.txt" || status="failed (see sweep.txt)"
  echo "λ ${lmbdas[$i]} from $init: $((SECONDS - began)) s of a $share s share" >> "$OUT/lease.txt"
done
echo "sweep: $((SECONDS - start)) s, $status" >> "$OUT/lease.txt"
# Its size says whether the cache could travel with the next lease (64 MiB carry limit).
du -sh "$JAX_COMPILATION_CACHE_DIR" >> "$OUT/lease.txt" 2>&1 || true
if [[ $KEEP_CACHE == 1 ]]; then
  cp -r "$JAX_COMPILATION_CACHE_DIR" "$OUT/jax-cache" && echo "cache copied to $OUT/jax-cache" \
    >> "$OUT/lease.txt"
fi
cat "$OUT/lease.txt"
tail -n 30 "$OUT/profile.txt" 2>/dev/null || true
