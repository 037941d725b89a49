#!/usr/bin/env bash
# The amplitude A/B: same data, same steps, same seed; only the decoder output mode (and the RMS loss) differ.
# CPU budget (2 cores): 16 kHz, n_filters 16, dimension 64, no LSTM, 8 x 1024 codebooks (4 kbps), batch 8 x 1 s.
# usage: bash experiments/codec_amplitude/run.sh [STEPS] [VARIANT ...]
#   folders: logs/codec_amplitude/runs/<variant>; variants: unbounded tanh_scale tanh_scale_rms15 tanh
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-1200}
shift || true
VARIANTS=("${@:-unbounded tanh_scale tanh_scale_rms15 tanh}")
COMMON=(task_name=codec_amplitude logger=csv seed=0
  data.sample_rate=16000 data.batch_size=8 data.crop_seconds=1.0
  model.codec.seanet.n_filters=16 model.codec.seanet.dimension=64 model.codec.seanet.lstm=0
  model.optim.optimizer.lr=1e-3 trainer.max_steps="$STEPS" trainer.val_check_interval=400 trainer.limit_val_batches=10
  callbacks.probe.every_n_steps=50 callbacks.probe.n_examples=8 model.diagnostics.every_n_steps=400
  'model.eval_bandwidths=[0.5,1.0,2.0]'
  # 400 vectors per step over 1024 codes = 0.39 per code: EnCodec's threshold 2 (tuned for 64 x 75 frames per
  # batch) would replace nearly every code every step
  model.codec.quantizer.threshold_ema_dead_code=0.05)
PY=${PY:-.venv/bin/python}
for v in ${VARIANTS[*]}; do
  case $v in
    unbounded) args=(experiment=codec_unbounded) ;;
    tanh_scale) args=(experiment=codec_tanh_scale) ;;
    tanh_scale_rms15) args=(experiment=codec_tanh_scale model.loss.rms.weight=15) ;;
    tanh) args=(experiment=codec_tanh) ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  # last_or_new: a re-run completes an interrupted variant (and a finished one only re-tests) instead of refusing
  $PY -m audiolab.train "${args[@]}" run_name="$v" ckpt_path=last_or_new "${COMMON[@]}"
done
