#!/usr/bin/env bash
# The token-LM study on a 2-core CPU: one-clip overfit, data-size ladder (1 / 10 / 40 files), the first-window crop
# bug, MusicGen vs Dia delays. Same seed, model (d_model 128 x 4 layers, 4 heads) and recipe everywhere.
# Needs data/tokenlm_music/tokens (`make tokenlm-data`). Run folders: logs/tokenlm_study/runs/<name>.
# usage: bash experiments/tokenlm_delay/run.sh [STEPS] [RUN ...]   (runs: overfit l1 l10 l40 l40_first l40_dia)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-800}
shift || true
RUNS=("${@:-overfit l1 l10 l40 l40_first l40_dia}")
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=${WANDB_MODE:-offline}
PY=${PY:-.venv/bin/python}
COMMON=(task_name=tokenlm_study logger=csv seed=0 callbacks.progress_bar.refresh_rate=200)
LADDER=(data.crop_seconds=3.0 data.batch_size=8 trainer.max_steps="$STEPS" trainer.val_check_interval=200
  callbacks.probe.every_n_steps=50 callbacks.probe.n_examples=4 model.probe.max_gen_frames=75
  model.optim.warmup_steps=50 model.diagnostics.every_n_steps=400)
for r in ${RUNS[*]}; do
  case $r in
    overfit) args=(experiment=tokenlm_overfit data.overfit_file=0 trainer.max_steps=300) ;;  # constant lr: = the first 300 of 600
    l1) args=(experiment=tokenlm_delay data.max_train_files=1 "${LADDER[@]}") ;;
    l10) args=(experiment=tokenlm_delay data.max_train_files=10 "${LADDER[@]}") ;;
    l40) args=(experiment=tokenlm_delay data.max_train_files=40 "${LADDER[@]}") ;;
    l40_first) args=(experiment=tokenlm_delay data.max_train_files=40 data.crop_mode=first "${LADDER[@]}") ;;
    l40_dia) args=(experiment=tokenlm_dia_delays data.max_train_files=40 "${LADDER[@]}") ;;
    *) echo "unknown run $r" >&2; exit 2 ;;
  esac
  rm -rf "logs/tokenlm_study/runs/$r"
  $PY -m audiolab.train "${args[@]}" run_name="$r" "${COMMON[@]}"
done
