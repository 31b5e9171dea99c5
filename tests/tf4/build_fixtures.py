"""Run by tests/tf4/conftest.py with the MAIN environment's python (transformers 5): writes the folders the
transformers-4.x tests read, and prints a JSON map of them.

    python tests/tf4/build_fixtures.py OUT_DIR
"""
import json
import sys
from pathlib import Path


def main(out: Path) -> dict:
    from ivl3_plugin.checkpoint import to_hf, to_remote
    from ivl3_plugin.tiny.remote import build_tiny_remote_model

    paths = {}
    for name, kwargs in {
        "default": {},  # Qwen2.5's rope_theta 1e6, default RoPE, untied lm_head, InternViT-300M style
        "dynamic": {"rope_scaling": {"type": "dynamic", "factor": 2.0}, "vision": "6b", "tie_word_embeddings": True,
                    "rope_theta": 500000.0},
    }.items():
        remote = build_tiny_remote_model(out / name / "remote", **kwargs)
        hf = to_hf(remote, out / name / "hf", overwrite=True)
        back = to_remote(hf, out / name / "remote-again", code_from=remote, overwrite=True)
        paths[name] = {"remote": str(remote), "hf": str(hf), "remote_again": str(back), "recipe": kwargs}
    return paths


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
