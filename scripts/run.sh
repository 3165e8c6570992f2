#!/usr/bin/env bash
# The main job on one machine, no Kubernetes: set up, make sure a model
# directory exists, then run predictor + transformer on loopback
# (SIFIS endpoint and v2 on http://127.0.0.1:5000). Ctrl-C stops both.
#   bash scripts/run.sh                      official weights (downloaded once, sha512-checked)
#   WEIGHTS=synthetic bash scripts/run.sh    synthetic weights (offline machines, demos)
#   MODEL_DIR=/path bash scripts/run.sh      another model directory
# Extra arguments go to `audioguard serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
# A venv set up for development (scripts/test.sh) already holds every runtime
# package: keep it on the dev lock instead of reinstalling from the runtime one.
setup_args=()
[ -f .venv/.audioguard-requirements-dev.lock.sha256 ] && setup_args=(--dev)
bash scripts/setup.sh "${setup_args[@]}"
models=${MODEL_DIR:-models}
status=0
.venv/bin/audioguard weights verify "$models" >/dev/null 2>&1 || status=$?
if [ "$status" = 2 ]; then  # files missing
  case "${WEIGHTS:-official}" in
    official) .venv/bin/audioguard weights download --dest "$models" ;;
    synthetic)
      # Fill in only the missing files: existing ones (official ones above all) stay.
      missing=()
      [ -f "$models/vggish_model.ckpt" ] || missing+=(vggish)
      [ -f "$models/vggish_pca_params.npz" ] || missing+=(pca)
      [ -f "$models/classifier_model.h5" ] || missing+=(classifier)
      .venv/bin/audioguard weights synthetic --dest "$models" --only "$(IFS=,; echo "${missing[*]}")" ;;
    *) echo "run: WEIGHTS must be official or synthetic" >&2; exit 2 ;;
  esac
elif [ "$status" = 1 ]; then
  echo "run: $models holds files that are not the official weights (synthetic?); scores are not the published model's" >&2
fi
exec .venv/bin/audioguard serve --model-dir "$models" "$@"
