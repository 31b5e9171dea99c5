"""LLaMA-Factory host tests: run with ``.venv-lf/bin/pytest tests/lf_host`` (scripts/setup_llamafactory_env.sh).

llamafactory 0.9.5 cannot share the ms-swift environment, so in any other
environment this folder collects nothing (and a run of just this folder
reports every test as skipped rather than failing to import).
"""
import importlib.util

import pytest

# A folder named ``llamafactory`` on sys.path would be found as a namespace package (origin None),
# so only a real package counts.
_spec = importlib.util.find_spec("llamafactory")
HAVE_LF = _spec is not None and _spec.origin is not None
collect_ignore_glob = [] if HAVE_LF else ["test_*.py"]


def pytest_collection_modifyitems(config, items):
    if HAVE_LF:
        return
    skip = pytest.mark.skip(reason="llamafactory is not installed (scripts/setup_llamafactory_env.sh builds .venv-lf)")
    for item in items:
        if "tests/lf_host" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def converted_lf(tmp_path_factory, demo_annotations):
    """Eight bundled videos converted by the real ``ivl3 convert`` (2 frames, LLaMA-Factory format)."""
    import json
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("lfdata")
    rows = [json.loads(l) for l in demo_annotations.read_text().splitlines() if l.strip()][:8]
    ann = root / "ann.jsonl"
    ann.write_text("".join(json.dumps({**r, "video": str(demo_annotations.parent / r["video"]), "split": None}) + "\n"
                           for r in rows))  # the hash splits them (--val-fraction), not the demo's marks
    out = root / "ds"
    proc = subprocess.run([sys.executable, "-m", "ivl3_plugin", "convert", str(ann), "-o", str(out), "--num-frames",
                           "2", "--val-fraction", "0.25", "--formats", "llamafactory", "--no-progress", "-j", "1",
                           "--cache-dir", str(root / "cache")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out
