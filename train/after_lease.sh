#!/usr/bin/env bash
# Back home after train/gpu_lease.sh: a lease's parameters become candidate bundled models.
#
#   LEASE=runs/lease WORK=runs/after bash train/after_lease.sh
#
# For each `$LEASE/sweep/params_<λ>.msgpack` (the bundled model of that λ, quality q, is the
# one it continued): a workdir and a float16 weights file with coding tables (`llic export`,
# needs TensorFlow), the bundled post-filter of quality q adapted to the new weights
# (`train.post_filter`, FILTER_STEPS steps at lr 1e-4, warm-up a tenth of them up to 100,
# its self-ensemble gain fitted at export: what sessions 26 and 28 did by hand), then
# `llic eval` of the bundled and the new pair on VAL with the default encoder and their RD
# costs `bpp + λ·MSE(0–255)` side by side.
# INSTALL=1 copies a new pair over the bundled one where its RD cost is lower; without it
# nothing in the repository changes. What is left in $WORK: wd_q<q>/ (training workdir),
# q<q>.safetensors, pf_q<q>/ (filter workdir), q<q>-post-filter.safetensors,
# bundled_q<q>.json and new_q<q>.json (eval curves), summary.txt.
#
# Settings (environment): LEASE, WORK; DATA (the lease's training photos, by default
# .data/bsds300); VAL (held-out photos, by default ../shared/data/kodak24); FILTER_STEPS
# (1000; session 26 adapted each filter in 1,000 steps, ~10 min each on 2 CPU cores);
# INSTALL (0); PY (python).
set -euo pipefail

: "${LEASE:?set LEASE to the folder a train/gpu_lease.sh call brought back}"
: "${WORK:?set WORK to a folder for the candidates}"
DATA=${DATA:-.data/bsds300}
VAL=${VAL:-../shared/data/kodak24}
FILTER_STEPS=${FILTER_STEPS:-1000}
INSTALL=${INSTALL:-0}
PY=${PY:-python}
ASSETS=llic_jax/assets
warmup=$(( FILTER_STEPS / 10 < 100 ? FILTER_STEPS / 10 : 100 ))  # 100 at 1,000 steps

shopt -s nullglob
params=("$LEASE"/sweep/params_*.msgpack)
if (( ${#params[@]} == 0 )); then
  echo "error: no $LEASE/sweep/params_*.msgpack (is LEASE a gpu_lease.sh \$OUT?)" >&2
  exit 2
fi
for folder in "$DATA" "$VAL"; do
  if [[ ! -d $folder ]]; then
    echo "error: no image folder $folder" >&2
    exit 2
  fi
done
mkdir -p "$WORK"
summary=$WORK/summary.txt
: > "$summary"

for p in "${params[@]}"; do
  lmbda=$(basename "$p" .msgpack)
  lmbda=${lmbda#params_}
  # The quality whose bundled weights were trained at this λ (their metadata says).
  q=$("$PY" - "$lmbda" <<'EOF'
import sys
from llic_jax.weights import BUNDLED, bundled_path, read_metadata
lmbda = float(sys.argv[1])
found = [q for q in BUNDLED if float(read_metadata(bundled_path(q))["lmbda"]) == lmbda]
if not found:
    sys.exit(f"error: no bundled model has λ {lmbda}")
print(found[0])
EOF
)
  echo "== λ $lmbda (quality $q)"
  bundled=$ASSETS/llic-elic-compact-q$q.safetensors
  bundled_filter=$ASSETS/llic-elic-compact-q$q-post-filter.safetensors
  weights=$WORK/q$q.safetensors
  filter=$WORK/q$q-post-filter.safetensors
  if [[ ! -f $weights ]]; then
    "$PY" -m train.lambda_sweep --to-workdir "$p" "$WORK/wd_q$q" --data "$DATA"
    "$PY" -m llic_jax export --workdir "$WORK/wd_q$q" --out "$weights" --float16
  fi
  if [[ ! -f $filter ]]; then
    "$PY" -m train.post_filter --workdir "$WORK/pf_q$q" --weights "$weights" \
        --data "$DATA" --val "$VAL" --init "$bundled_filter" --steps "$FILTER_STEPS" \
        --lr 1e-4 --warmup "$warmup" --eval-every 500
    "$PY" -m train.post_filter --workdir "$WORK/pf_q$q" --export "$filter" --float16 \
        --ensemble-gain fit
  fi
  "$PY" -m llic_jax eval --data "$VAL" --weights "$bundled" --post-filter "$bundled_filter" \
      --out "$WORK/bundled_q$q.json" --quiet
  "$PY" -m llic_jax eval --data "$VAL" --weights "$weights" --post-filter "$filter" \
      --out "$WORK/new_q$q.json" --quiet
  # Prints the two RD costs (also into the summary), then "yes" when the new pair's is lower.
  better=$("$PY" - "$lmbda" "$q" "$WORK/bundled_q$q.json" "$WORK/new_q$q.json" "$summary" <<'EOF'
import sys

import numpy as np

from llic_jax.rd_results import load_curve

lmbda, q, summary = float(sys.argv[1]), sys.argv[2], sys.argv[5]
costs, lines = [], []
for label, name in zip(("bundled", "new"), sys.argv[3:5]):
    rows = load_curve(name)["points"][0]["images"]
    bpp = np.mean([r["bpp"] for r in rows])
    psnr = np.mean([r["psnr"] for r in rows])
    mse = np.mean([255.0**2 * 10 ** (-r["psnr"] / 10) for r in rows])  # DESIGN.md §5
    costs.append(bpp + lmbda * mse)
    lines.append(f"q{q} {label:7s} {bpp:.4f} bpp {psnr:.3f} dB  RD cost {costs[-1]:.5f}")
lines.append(f"q{q} λ {lmbda}: RD cost {100 * (costs[1] / costs[0] - 1):+.2f}% (new vs bundled)")
with open(summary, "a") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines), file=sys.stderr)
print("yes" if costs[1] < costs[0] else "no")
EOF
)
  if [[ $INSTALL == 1 && $better == yes ]]; then
    cp "$weights" "$bundled"
    cp "$filter" "$bundled_filter"
    echo "q$q: installed in $ASSETS" | tee -a "$summary"
  fi
done
echo "== summary ($summary)"
cat "$summary"
