"""transformers-4.x reader tests: run with ``.venv-tf4/bin/pytest tests/tf4`` (scripts/setup_tf4_env.sh).

The folders under test are written by the main environment (transformers 5, ``$IVL3_MAIN_PYTHON``,
default ``.venv/bin/python``) through ``build_fixtures.py``; this environment only reads them, the way
transformers-4.x-era loaders (LMDeploy, vLLM, the official remote code) do.  Under any other transformers
major version this folder collects nothing.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

try:
    import transformers

    HAVE_TF4 = transformers.__version__.startswith("4.")
except ImportError:  # pragma: no cover
    HAVE_TF4 = False

collect_ignore_glob = [] if HAVE_TF4 else ["test_*.py"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def written(tmp_path_factory) -> dict:
    """{"default"|"dynamic": {"remote", "hf", "remote_again", "recipe"}} written by ivl3 checkpoint (transformers 5)."""
    python = Path(os.environ.get("IVL3_MAIN_PYTHON", REPO / ".venv" / "bin" / "python"))
    if not python.exists():
        pytest.fail(f"{python} not found: build the main environment first (make setup) or set IVL3_MAIN_PYTHON")
    out = tmp_path_factory.mktemp("tf4")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(out / "modules"))
    proc = subprocess.run([str(python), str(Path(__file__).with_name("build_fixtures.py")), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
