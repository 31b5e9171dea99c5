#!/usr/bin/env bash
# Build .venv-tf4: transformers 4.x (the newest 4.x release, pinned in constraints-tf4.txt) and pytest, no torch.
#
# Why: LMDeploy, vLLM releases built on transformers 4.x and the official InternVL remote code read a
# checkpoint's config with transformers 4.x.  tests/tf4 loads the configs and tokenizers that
# `ivl3 checkpoint` / `ivl3 export` write with it (rope_theta, rope_scaling, torch_dtype, named image tokens,
# processor configs).  The folders under test are written by the main environment (.venv, transformers 5):
# tests/tf4/conftest.py runs $IVL3_MAIN_PYTHON (default .venv/bin/python) to build them.
#
# Usage: scripts/setup_tf4_env.sh [VENV_DIR]   (default: .venv-tf4)
# Idempotent: re-running on an up-to-date environment (stamp of the constraints) only checks it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-tf4}"
CONSTRAINTS="$ROOT/constraints-tf4.txt"
PY="${PYTHON:-python3}"

STAMP="$VENV/.ivl3-constraints.sha256"
WANT="$(sha256sum "$CONSTRAINTS" "$ROOT/build-constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] \
    && "$VENV/bin/python" -c "import transformers, pytest; assert transformers.__version__.startswith('4.')" 2>/dev/null; then
    echo "setup_tf4_env: $VENV is ready"
    exit 0
fi

"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" pip
# Wheels only (no source builds); build tools pinned should pip ever need them.
"$VENV/bin/python" -m pip install --quiet --build-constraint "$ROOT/build-constraints.txt" --only-binary=:all: \
    -c "$CONSTRAINTS" transformers pytest pytest-timeout

"$VENV/bin/python" -c "import transformers; print('setup_tf4_env: ok, transformers', transformers.__version__)"
echo "$WANT" > "$STAMP"
