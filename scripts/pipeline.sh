#!/usr/bin/env bash
# The main job: the whole DVC pipeline. With a GPU, the defaults in params.yaml (the PyTorch
# tutorial's DCGAN at 64x64, 5 epochs). Without one, a quick variant that finishes in minutes on a
# CPU, run as a DVC experiment so that it lands in DVC and MLflow like any other run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/dvc ] || { echo "pipeline: no .venv here; run 'make pipeline' (it sets up first) or 'make setup'." >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"

# The quick CPU variant (README, "Quick start"): 32x32 instead of 64x64, half-width nets, 10 epochs,
# one-sided label smoothing (the best of the variants studied at this budget; docs/studies.md).
QUICK_CPU=(-S image_size=32 -S ngf=32 -S ndf=32 -S epochs=10 -S label_smoothing=0.1 -S sample_every=200)

if python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "pipeline: CUDA GPU found -> running the defaults of params.yaml: dvc repro"
  dvc repro
else
  name="cpu-quick-$(date +%Y%m%d-%H%M%S)"
  echo "pipeline: no CUDA GPU -> running the quick CPU variant as DVC experiment '$name':"
  echo "          dvc exp run -n $name ${QUICK_CPU[*]}"
  # `dvc exp run` first checks out every declared output that dvc.lock records, and warns "No file hash
  # info found for ... It won't be created" for each one a fresh clone has never built (about 20 lines,
  # all harmless, before the first stage). The same command, with that one warning filtered out:
  python - exp run -n "$name" "${QUICK_CPU[@]}" <<'PY'
import logging, sys
from dvc.cli import main
logging.getLogger("dvc_data.index.checkout").addFilter(lambda record: "No file hash info found" not in record.getMessage())
sys.exit(main(sys.argv[1:]))
PY
  echo "pipeline: the workspace now holds this experiment's params and results; 'git checkout params.yaml' returns to the defaults."
fi
echo
python - <<'PY'
import json
metrics = json.load(open("reports/metrics.json"))
scores, floor = metrics["scores"], metrics["scores_floor"]
print(f"Scores of {metrics['setup']['n_generated']} samples (reports/metrics.json), lower is better:")
for name in ("fd_classifier", "kid_classifier"):
    if name in scores:
        print(f"  scores.{name}: {scores[name]:.4g}   real-vs-real floor: {floor[name]:.4g}")
PY
cat <<'EOF'
Figures: reports/samples/ and reports/train/.

dvc and mlflow live in .venv: activate it to type the next commands in this shell.

  source .venv/bin/activate
  dvc exp run -S lr=0.0001      # a variant
  dvc exp show --only-changed   # the experiments side by side
  make ui                       # MLflow: prints the URL of the runs page

One run per setting cannot tell a better setting from a lucky seed: sweep seeds, then compare
(README, "Comparing configurations over seeds"):
EOF
if [ "${name:-}" ]; then  # the quick CPU variant: its sweep keeps its params
  echo "  dvc exp run --queue ${QUICK_CPU[*]} -S 'seed=range(1,4)' -S lr=0.0001,0.0002 && scripts/run-queue.sh 1"
  echo "  dcgan-compare --baseline lr=0.0002"
else
  echo "  dvc exp run --queue -S 'seed=range(1,4)' -S lr=0.0001,0.0002 && scripts/run-queue.sh 2"
  echo "  dcgan-compare"
fi
