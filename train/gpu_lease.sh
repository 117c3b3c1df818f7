#!/usr/bin/env bash
# One short GPU lease spent on the compact LLIC, in one call (docs/training.md "Short leases").
#
#   OUT=$OUT DATA=.data/bsds300 BUDGET_S=420 bash train/gpu_lease.sh
#
# The lent machine has JAX but neither TensorFlow nor a package registry, and it sees only
# the working tree: copy the photos into the git-ignored `.data/` and carry it. What comes
# back in $OUT: `sweep/params_<λ>.msgpack` (float16, each λ trained from $INIT),
# `sweep/log.jsonl`, `profile.txt` when PROFILE=1, and `lease.txt` (device, versions,
# timings). Back home: `python -m train.lambda_sweep
# --to-workdir $OUT/sweep/params_0.013.msgpack WD`, then `llic export --workdir WD --float16`.
#
# Settings (environment): DATA, INIT (weights or workdir the sweep starts from), LMBDAS
# (space-separated), BATCH (crops of PATCH² per model and step), BUDGET_S (wall clock of the
# sweep, compilation included), PROFILE=1 (first a profiled step of the same shapes: about
# one compilation more).
set -euo pipefail

: "${OUT:?set OUT to the folder that comes back}"
DATA=${DATA:-.data/bsds300}
INIT=${INIT:-train/warm_start/llic-elic-compact-q4.safetensors}
LMBDAS=${LMBDAS:-0.013}
BATCH=${BATCH:-64}
PATCH=${PATCH:-128}
BUDGET_S=${BUDGET_S:-420}
PROFILE=${PROFILE:-0}
PY=${PY:-python3}

if [[ ! -d $DATA ]]; then
  echo "error: no image folder $DATA (copy ../shared/data/bsds300 there and carry it)" >&2
  exit 2
fi
mkdir -p "$OUT"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  $PY -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, jax.devices())" || true
} > "$OUT/lease.txt" 2>&1

models=$(wc -w <<< "$LMBDAS")
if [[ $PROFILE == 1 ]]; then
  start=$SECONDS
  $PY -m eval.profile_train_step --model llic-elic-compact --models "$models" \
    --batch "$BATCH" --patch "$PATCH" --steps 3 > "$OUT/profile.txt" 2>&1 || true
  echo "profile: $((SECONDS - start)) s" >> "$OUT/lease.txt"
fi

start=$SECONDS
# shellcheck disable=SC2086  # LMBDAS is a list on purpose
$PY -m train.lambda_sweep --data "$DATA" --init "$INIT" --lmbdas $LMBDAS \
  --batch "$BATCH" --patch "$PATCH" --budget-s "$BUDGET_S" --report-every 50 \
  --save-every-s 60 --save-dtype float16 --out "$OUT/sweep" 2>&1 | tee "$OUT/sweep.txt" \
  && status=ok || status="failed (see sweep.txt)"
echo "sweep: $((SECONDS - start)) s, $status" >> "$OUT/lease.txt"
cat "$OUT/lease.txt"
tail -n 25 "$OUT/profile.txt" 2>/dev/null || true
