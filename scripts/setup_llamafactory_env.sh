#!/usr/bin/env bash
# Build .venv-lf: a separate environment for the LLaMA-Factory host.
#
# Why separate: llamafactory 0.9.5 pins transformers<=5.6, peft 0.18.x and
# datasets<=4.0, while ms-swift 4.6 wants newer ones, so the two hosts cannot
# share one environment.  Every version is pinned in constraints-llamafactory.txt.
#
# Why llamafactory is installed with --no-deps: it requires torchaudio, and every
# torchaudio release on PyPI pins an exact torch older than the torch 2.14.1 this
# machine carries.  We install its other requirements explicitly and torchaudio
# without dependencies (LLaMA-Factory only imports it; it is used for audio inputs,
# which video summarisation never has).  The web UI / API extras (gradio, fastapi)
# are left out: training does not import them.
#
# Usage: scripts/setup_llamafactory_env.sh [VENV_DIR]   (default: .venv-lf)
# Idempotent: re-running on a complete, up-to-date environment (stamp of the constraints and
# pyproject.toml) only checks it; otherwise pip brings it in line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-lf}"
CONSTRAINTS="$ROOT/constraints-llamafactory.txt"
PY="${PYTHON:-python3}"

STAMP="$VENV/.ivl3-constraints.sha256"
WANT="$(sha256sum "$CONSTRAINTS" "$ROOT/build-constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] \
    && "$VENV/bin/python" -c "import llamafactory, ivl3_plugin, torchaudio, decord" 2>/dev/null; then
    echo "setup_llamafactory_env: $VENV is ready"
    exit 0
fi

"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" pip
# Build tools pinned for the isolated builds; everything but our own package must come as a wheel
# (no source-only package in this tree: a new one fails here, not on a user's machine).
PIP=("$VENV/bin/python" -m pip install --quiet --build-constraint "$ROOT/build-constraints.txt"
     --only-binary=:all: --no-binary=ivl3-plugin)

# 1. torch from this machine's local wheels (the machine's pip constraint caps it at these).
"${PIP[@]}" torch==2.14.1 torchvision==0.29.1

# 2. llamafactory itself, then its requirements (minus torchaudio, gradio and the API server).
"${PIP[@]}" --no-deps -c "$CONSTRAINTS" llamafactory==0.9.5
"${PIP[@]}" -c "$CONSTRAINTS" \
    "transformers" "tokenizers" "peft" "datasets" "accelerate" "trl" \
    "av" "torchdata" "tyro" "einops" "fire" "omegaconf" "modelscope" "matplotlib" "pandas" \
    "scipy" "sentencepiece" "tiktoken" "protobuf" "pydantic" "pyyaml" "safetensors" \
    "packaging" "numpy" "hf-transfer"
"${PIP[@]}" --no-deps -c "$CONSTRAINTS" torchaudio

# 3. our package without the swift extra, plus video decoding and the test runner.
"${PIP[@]}" -c "$CONSTRAINTS" -e "$ROOT[video,dev]"

"$VENV/bin/python" -c "import llamafactory, torchaudio, ivl3_plugin, decord; \
from llamafactory.data.template import TEMPLATES; print('setup_llamafactory_env: ok,', len(TEMPLATES), 'templates')"
echo "$WANT" > "$STAMP"
