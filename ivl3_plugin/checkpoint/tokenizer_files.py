"""Token ids read straight from a folder's tokenizer files (no tokenizer class, no remote code)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
)


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def token_id(folder: Path, token: str) -> Optional[int]:
    """The id of ``token`` from tokenizer_config.json / tokenizer.json / added_tokens.json / vocab.json."""
    folder = Path(folder)
    config = _load(folder / "tokenizer_config.json") or {}
    for key, entry in (config.get("added_tokens_decoder") or {}).items():
        if isinstance(entry, dict) and entry.get("content") == token:
            return int(key)
    fast = _load(folder / "tokenizer.json") or {}
    for entry in fast.get("added_tokens") or []:
        if entry.get("content") == token:
            return int(entry["id"])
    vocab = (fast.get("model") or {}).get("vocab")
    if isinstance(vocab, dict) and token in vocab:
        return int(vocab[token])
    added = _load(folder / "added_tokens.json") or {}
    if token in added:
        return int(added[token])
    plain = _load(folder / "vocab.json") or {}
    if token in plain:
        return int(plain[token])
    return None


def has_tokenizer(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file() or (
        folder / "tokenizer.model").is_file()
