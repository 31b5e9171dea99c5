"""BERTScore (Zhang et al., ICLR 2020) from a *local* encoder, no hub access.

Tokens of hypothesis and reference are embedded by one hidden layer of the
model; each token is matched greedily with its most similar token on the
other side (cosine); precision/recall are the mean best similarities and F1
their harmonic mean.  Several references: the best F1 wins (as bert-score).
No idf weighting and no baseline rescaling, so values are comparable only
between runs with the same model and layer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence


def bertscore(hyps: Sequence[str], refs: Sequence[Sequence[str]], model_path: str, layer: Optional[int] = None,
              batch_size: int = 16, device: str = "cpu") -> List[Dict[str, float]]:
    """Per-item {bertscore_precision, bertscore_recall, bertscore_f1} in [0, 1]."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if not Path(model_path).is_dir():
        raise ValueError(f"bertscore_model {model_path!r} is not a local model directory")
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).to(device).eval()

    def embed(texts: List[str]) -> List["torch.Tensor"]:
        out = []
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True, truncation=True,
                      return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask")
            with torch.no_grad():
                hidden = model(**enc.to(device), output_hidden_states=True).hidden_states
            h = hidden[-1 if layer is None else layer]
            keep = enc["attention_mask"].bool() & ~special.to(device).bool()
            for row, mask in zip(h, keep):
                out.append(torch.nn.functional.normalize(row[mask].float(), dim=-1))
        return out

    flat_refs = [r for rs in refs for r in rs]
    h_emb = embed(list(hyps))
    r_emb = embed(flat_refs)
    results, pos = [], 0
    for h, rs in zip(h_emb, refs):
        best = {"bertscore_precision": 0.0, "bertscore_recall": 0.0, "bertscore_f1": 0.0}
        for r in r_emb[pos:pos + len(rs)]:
            if len(h) == 0 or len(r) == 0:
                continue
            sim = h @ r.T
            p = float(sim.max(dim=1).values.mean())
            rc = float(sim.max(dim=0).values.mean())
            f = 2 * p * rc / (p + rc) if p + rc > 0 else 0.0
            if f > best["bertscore_f1"]:
                best = {"bertscore_precision": p, "bertscore_recall": rc, "bertscore_f1": f}
        pos += len(rs)
        results.append(best)
    return results
