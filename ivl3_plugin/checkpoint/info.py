"""``ivl3 checkpoint info DIR``: what a checkpoint folder is, what is off with it, and what to run.

Reads only JSON files, safetensors headers and the modeling files' text: no tensor data, no model, no
remote code is executed.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import configs as cfg
from .converter import detect_format, read_config
from .errors import CheckpointError
from .tokenizer_files import has_tokenizer, token_id
from .weights import WeightIndex


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return str(n)  # pragma: no cover


def _processor_sizes(folder: Path) -> Dict[str, Optional[dict]]:
    """Image / video processor settings, where transformers 5 (processor_config.json) or 4.x looks."""
    out: Dict[str, Optional[dict]] = {"image": None, "video": None}
    nested = {}
    if (folder / "processor_config.json").is_file():
        nested = json.loads((folder / "processor_config.json").read_text())
    for key, nested_key, file in (("image", "image_processor", "preprocessor_config.json"),
                                  ("video", "video_processor", "video_preprocessor_config.json")):
        data = nested.get(nested_key)
        if data is None and (folder / file).is_file():
            data = json.loads((folder / file).read_text())
        if data is not None:
            size = data.get("size")
            if isinstance(size, dict):
                size = size.get("height") or size.get("shortest_edge")
            out[key] = {"size": size, "mean": data.get("image_mean"), "std": data.get("image_std")}
    return out


def _remote_code(folder: Path, config: dict) -> Dict[str, Any]:
    files = sorted(p.name for p in folder.glob("*.py"))
    text = {name: (folder / name).read_text(errors="replace") for name in files}
    model_ref = (config.get("auto_map") or {}).get("AutoModel", "")
    model_file = model_ref.split(".")[0] + ".py" if model_ref else None
    vision = config.get("vision_config") or {}
    return {
        "files": files,
        "model_file_present": bool(model_file and model_file in text),
        "imports_timm": any("import timm" in t or "from timm" in t for t in text.values()),
        "calls_post_init": bool(model_file and re.search(r"^[^#\n]*self\.post_init\(\)", text.get(model_file, ""),
                                                          re.MULTILINE)),
        "use_flash_attn": bool(vision.get("use_flash_attn", False)),
    }


def describe(path) -> Dict[str, Any]:
    """A dict describing the checkpoint; problems go to ``problems`` instead of raising (except no checkpoint)."""
    folder = Path(path)
    fmt = detect_format(folder)
    config = read_config(folder)
    where = str(folder / "config.json")
    report: Dict[str, Any] = {"path": str(folder), "format": fmt, "problems": [], "next": []}
    desc = None
    try:
        desc = cfg.describe_remote(config, where) if fmt == "remote" else cfg.describe_hf(config, where)
    except CheckpointError as exc:
        report["problems"].append(str(exc))
    text_raw = (config.get("llm_config") if fmt == "remote" else config.get("text_config")) or {}
    if desc is not None:
        params = desc.text.get("rope_parameters") or {}
        report["language_model"] = {
            "type": desc.text_model_type, "layers": desc.text.get("num_hidden_layers"),
            "hidden_size": desc.text.get("hidden_size"), "vocab_size": desc.text.get("vocab_size"),
            "rope_theta": params.get("rope_theta"), "rope_type": params.get("rope_type", "default"),
            "tie_word_embeddings": desc.tie_word_embeddings,
        }
        report["vision"] = {"style": desc.vision_style, "layers": desc.vision["num_hidden_layers"],
                            "hidden_size": desc.vision["hidden_size"], "image_size": desc.image_size,
                            "tokens_per_tile": desc.tokens_per_tile}
    if "rope_theta" not in text_raw:
        theta = (report.get("language_model") or {}).get("rope_theta")
        report["problems"].append(
            f"{'llm_config' if fmt == 'remote' else 'text_config'} has no rope_theta (only transformers 5's "
            "rope_parameters): transformers-4.x-era loaders (LMDeploy, vLLM, the official code) fall back to 10000"
            + (f" (this model uses {theta})" if theta is not None else ""))
    try:
        weights = WeightIndex(folder)
        infos = weights.infos()
        dtypes: Dict[str, int] = {}
        for info in infos.values():
            dtypes[info.dtype] = dtypes.get(info.dtype, 0) + 1
        numel = 0
        for info in infos.values():
            n = 1
            for d in info.shape:
                n *= d
            numel += n
        report["weights"] = {"files": len(weights.files), "tensors": len(infos), "bytes": weights.total_bytes(),
                             "parameters": numel, "dtypes": dtypes, "sharded": weights.index_file is not None}
    except CheckpointError as exc:
        report["problems"].append(str(exc))
    if has_tokenizer(folder):
        report["tokenizer"] = {"img_context_id": token_id(folder, "<IMG_CONTEXT>")}
        if fmt == "hf" and desc is not None and desc.image_token_id != report["tokenizer"]["img_context_id"]:
            report["problems"].append(f"config image_token_id {desc.image_token_id} but the tokenizer's <IMG_CONTEXT> "
                                      f"is {report['tokenizer']['img_context_id']}")
    else:
        report["tokenizer"] = None
        report["problems"].append("no tokenizer files")
    if fmt == "remote":
        code = _remote_code(folder, config)
        report["remote_code"] = code
        if not code["model_file_present"]:
            report["problems"].append("the modeling file auto_map names is missing (to-remote needs --code-from)")
        if code["model_file_present"] and not code["calls_post_init"]:
            report["problems"].append("the model class never calls post_init() (release-era code): transformers 5 "
                                      "fails with 'no attribute all_tied_weights_keys' unless the loader repairs it")
        if code["imports_timm"]:
            report["problems"].append("the remote code imports timm (pip install timm to load it as is)")
        report["next"].append(f"ivl3 checkpoint to-hf {folder} {folder}-hf    # transformers-native: SDPA, "
                              "compiled layers, Liger; no timm, no flash-attn needed")
    else:
        proc = _processor_sizes(folder)
        report["processor"] = proc
        for kind in ("image", "video"):
            p = proc.get(kind)
            if p is None:
                report["problems"].append(f"no {kind} processor config")
            elif p["size"] != (desc.image_size if desc else cfg.TILE_SIZE) or list(p["mean"] or []) != cfg.IMAGENET_MEAN:
                report["problems"].append(f"{kind} processor at {p['size']} px, mean {p['mean']}: InternVL3 needs "
                                          "448 px and ImageNet mean/std (OpenGVLab/InternVL#1184)")
        report["next"].append(f"ivl3 checkpoint to-remote {folder} {folder}-remote --code-from ORIGINAL_REMOTE_DIR"
                              "    # for LMDeploy / the official code")
    if report["problems"] and desc is not None:
        report["next"].append(f"ivl3 checkpoint to-{fmt if fmt == 'hf' else 'remote'} {folder} {folder}-fixed    "
                              "# rewrites configs and processors (4.x fields, 448 px ImageNet)")
    return report


def format_report(report: Dict[str, Any]) -> str:
    lines: List[str] = [f"{report['path']}: {'remote-code (InternVLChatModel)' if report['format'] == 'remote' else 'transformers-native -hf (InternVLForConditionalGeneration)'}"]
    lm = report.get("language_model")
    if lm:
        lines.append(f"  language model: {lm['type']}, {lm['layers']} layers x {lm['hidden_size']}, vocab {lm['vocab_size']}, "
                     f"rope_theta {lm['rope_theta']} ({lm['rope_type']}), tied embeddings {lm['tie_word_embeddings']}")
    vis = report.get("vision")
    if vis:
        lines.append(f"  vision: {vis['style']}, {vis['layers']} layers x {vis['hidden_size']}, {vis['image_size']} px tiles "
                     f"-> {vis['tokens_per_tile']} tokens")
    w = report.get("weights")
    if w:
        dtypes = ", ".join(f"{k} x{v}" for k, v in sorted(w["dtypes"].items()))
        lines.append(f"  weights: {w['tensors']} tensors, {w['parameters'] / 1e6:.2f} M parameters, {_human(w['bytes'])} in "
                     f"{w['files']} file(s){' + index' if w['sharded'] else ''} ({dtypes})")
    if report.get("tokenizer"):
        lines.append(f"  tokenizer: <IMG_CONTEXT> = {report['tokenizer']['img_context_id']}")
    code = report.get("remote_code")
    if code:
        lines.append(f"  remote code: {', '.join(code['files']) or 'none'}; calls post_init: {code['calls_post_init']}; "
                     f"imports timm: {code['imports_timm']}; use_flash_attn: {code['use_flash_attn']}")
    proc = report.get("processor")
    if proc:
        for kind in ("image", "video"):
            p = proc.get(kind)
            lines.append(f"  {kind} processor: " + (f"{p['size']} px, mean {p['mean']}" if p else "missing"))
    for problem in report["problems"]:
        lines.append(f"  ! {problem}")
    for step in report["next"]:
        lines.append(f"  -> {step}")
    return "\n".join(lines)
