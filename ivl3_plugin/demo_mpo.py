"""``ivl3 demo --mpo``: one MPO round (issue #19) on pairs made from the demo's own SFT model.

sample N candidates per train film with the SFT model (``ivl3 predict --num-samples``'s host call,
real ``swift infer``) -> ``ivl3 pairs`` (chosen = the reference, rejected = the lowest-scoring
candidate) -> ``swift rlhf`` with the shipped ``tiny-cpu-mpo`` recipe (MPO: sigmoid + bco_pair,
rpo_alpha 1), LoRA on top of the SFT model -> score the held-out films again, as the SFT stage did.

**Why LoRA goes straight onto the SFT checkpoint (no merge, no ``--adapters``).** The demo's SFT stage
is a *full* fine-tune (``tiny-cpu`` has ``tuner_type: full``), so its final checkpoint is a complete
model folder: it is passed as the MPO run's ``model``, and the ``tiny-cpu-mpo`` recipe adds a fresh
LoRA to it.  That is also the right DPO reference: with LoRA and no ``ref_model``, ms-swift's reference
is the policy with the adapter switched off (peft's ``disable_adapter()``), i.e. exactly the SFT model,
with no second copy in memory.  Had SFT been LoRA, its adapter would first have to be merged
(``ivl3 export`` / ``swift export --merge_lora``): stacking a new LoRA over ``--adapters`` would make
the reference the *base* model (both adapters off) instead of the SFT policy, and ``resume_from_checkpoint``
would continue the SFT run's optimiser, not start a preference round.  Held-out predictions after MPO
are ``swift infer --model SFT --adapters MPO``.
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

MPO_RECIPE = "tiny-cpu-mpo"  # recipes/tiny-cpu-mpo.yaml, through `ivl3 train`'s path like the SFT stage


@dataclass
class MpoSettings:
    """The demo's MPO round. ``steps``/``learning_rate`` override the recipe's (20 steps, 1e-3) for the demo
    only: on a 9/9 SFT model, lr 1e-3 and 5e-4 (and 1e-4 with 64 films) each broke a held-out film; 2e-5 kept
    the held-out films as SFT had them (docs/demo.md, "ivl3 demo --mpo", has the measured table)."""
    films: int = 32             # train films sampled (spread over the 144: every colour, shape, direction)
    num_samples: int = 4        # candidates per film
    temperature: float = 1.0
    seed: int = 0               # sampling seed and the MPO run's seed
    steps: Optional[int] = 24   # None: the recipe's max_steps
    learning_rate: Optional[float] = 2e-5  # None: the recipe's
    max_batch_size: int = 16


@dataclass
class MpoResult:
    after: Dict[str, float]                       # corpus scores of the held-out films after MPO
    attributes: Dict[str, int]                    # held-out counts after MPO
    lines: Dict[str, str]                         # per video id: which attributes are right after MPO
    predictions: Dict[str, str]                   # per video id: the prediction after MPO
    rewards: List[Dict[str, float]]               # per logged step: step, margin, accuracy, loss
    pairs: int
    sampled: int
    paths: Dict[str, str] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    changed: Optional[int] = None                 # held-out predictions whose text differs from SFT's


def spread(rows: Sequence, n: int) -> List:
    """``n`` rows evenly spread over ``rows`` (all of them when there are fewer), in their order: the bundled
    train films come in colour/shape/direction order, so a spread subset holds every value of each."""
    if n <= 0:
        raise ValueError(f"films must be > 0, got {n}")
    if n >= len(rows):
        return list(rows)
    return [rows[(i * len(rows)) // n] for i in range(n)]


def reward_rows(train_out: Path) -> List[Dict[str, float]]:
    """The reward margin/accuracy ms-swift logged per step (logging.jsonl), in step order."""
    from .demo import logged_rows

    rows = []
    for row in logged_rows(train_out):
        if "rewards/margins" in row:
            rows.append({"step": int(str(row.get("global_step/max_steps", len(rows) + 1)).split("/")[0]),
                         "margin": float(row["rewards/margins"]),
                         "accuracy": float(row.get("rewards/accuracies", float("nan"))),
                         "loss": float(row.get("loss", float("nan")))})
    return rows


def sample_points(rows: Sequence, k: int = 5) -> List:
    """First, last and evenly spaced points between (at most ``k``), for a one-line trend."""
    if len(rows) <= k:
        return list(rows)
    return [rows[round(i * (len(rows) - 1) / (k - 1))] for i in range(k)]


def quarter_means(values: Sequence[float]) -> Tuple[float, float]:
    """Mean of the first and of the last quarter of the steps: one step's margin is one batch of 4 pairs (noisy),
    so whether the margin rose is read from these."""
    q = max(1, len(values) // 4)
    return sum(values[:q]) / q, sum(values[-q:]) / q


def reward_lines(rows: Sequence[Dict[str, float]]) -> List[str]:
    if not rows:
        return ["MPO: no reward margin logged"]
    pts = sample_points(rows)
    first, last = rows[0], rows[-1]
    early, late = quarter_means([r["margin"] for r in rows])
    return [f"MPO reward margin: {first['margin']:.3f} -> {last['margin']:.3f} ({len(rows)} logged steps; "
            + ", ".join(f"step {p['step']} {p['margin']:.3f}" for p in pts) + ")",
            f"MPO reward margin, mean of the first / last quarter of the steps: {early:.4f} -> {late:.4f}",
            f"MPO reward accuracy: {first['accuracy']:.2f} -> {last['accuracy']:.2f} ("
            + ", ".join(f"step {p['step']} {p['accuracy']:.2f}" for p in pts) + ")"]


def verdict(sft: Dict[str, int], mpo: Dict[str, int], changed: Optional[int] = None) -> str:
    """What the MPO round did to the held-out films, in words (no claim the counts do not make)."""
    n = mpo["videos"]
    texts = "" if changed is None else f"; {changed} of {n} held-out predictions changed text"
    if mpo["all"] < sft["all"]:
        return (f"MPO made the held-out films worse: all three right {sft['all']}/{n} after SFT, {mpo['all']}/{n} "
                f"after MPO{texts}")
    if mpo["all"] > sft["all"]:
        return (f"MPO improved the held-out films: all three right {sft['all']}/{n} after SFT, {mpo['all']}/{n} "
                f"after MPO{texts}")
    return (f"MPO left the held-out films as SFT had them (all three right {mpo['all']}/{n} both times{texts}); "
            "what it changed is the preference margin on the train pairs")


def mpo_launch(sft_model: Path, pairs_file: Path, out_dir: Path, s: MpoSettings):
    """The MPO run: the shipped recipe on the SFT model and the pairs, with the demo's steps/LR/seed."""
    from .hosts.training import training_launch
    from .plugins import get_plugins
    from .recipe.config import apply_overrides
    from .recipe.launch import Topology, load

    overrides = {"model": str(sft_model), "output_dir": str(out_dir), "dataset": [str(pairs_file)], "seed": s.seed}
    if s.steps is not None:
        overrides.update(max_steps=s.steps, save_steps=s.steps)
    if s.learning_rate is not None:
        overrides["learning_rate"] = s.learning_rate
    recipe = apply_overrides(load(MPO_RECIPE, {e.name: Path(e.obj) for e in get_plugins().recipes}), overrides)
    return training_launch(recipe, overrides, Topology(), host="swift")


def run_mpo(s: MpoSettings, sft_model: Path, train_jsonl: Path, val_jsonl: Path, out_dir: Path,
            max_new_tokens: int, env: Dict[str, str], log: Callable[[str], None] = print,
            step: Callable[[str], str] = lambda name: name, sft_predictions: Optional[Path] = None) -> MpoResult:
    """The MPO round after the demo's SFT stage; ``step(name)`` numbers the progress lines like the demo's;
    ``sft_predictions`` (the SFT model's held-out predictions) lets the result count the changed texts."""
    from .checkpoint.export import find_checkpoint
    from .demo import launched_run, read_attributes, run_folders
    from .hosts import get_host
    from .hosts.protocol import PredictRequest
    from .hosts.training import launch_environment
    from .metric.evaluation import evaluate_predictions
    from .metric.predictions import load_predictions
    from .preference.build import PairOptions, build_pairs

    host = get_host("swift")
    out_dir.mkdir(parents=True, exist_ok=True)
    t: Dict[str, float] = {}

    clock = time.time()
    rows = [json.loads(line) for line in Path(train_jsonl).read_text().splitlines() if line.strip()]
    subset = out_dir / "train-subset.jsonl"
    subset.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in spread(rows, s.films)))
    log(step(f"sampling {s.num_samples} candidates per film for {min(s.films, len(rows))} of {len(rows)} train "
             f"films with the SFT model (temperature {s.temperature:g}, seed {s.seed})"))
    candidates = host.predict(PredictRequest(sft_model, subset, out_dir / "candidates.jsonl",
                                             max_new_tokens=max_new_tokens, max_batch_size=s.max_batch_size,
                                             num_samples=s.num_samples, temperature=s.temperature, seed=s.seed,
                                             progress=True))
    t["mpo_sample"] = time.time() - clock

    clock = time.time()
    built = build_pairs(subset, candidates, out_dir / "pairs", PairOptions(seed=s.seed))
    pairs_file = Path(built.outputs["swift"])
    t["mpo_pairs"] = time.time() - clock
    sampled = sum(len(p.candidates or []) for p in load_predictions(candidates))
    if not built.pairs:
        raise RuntimeError(f"ivl3 pairs kept no pair from {candidates}: every film's worst candidate was the "
                           f"reference itself; see {built.outputs['report']}")
    log(step(f"{len(built.pairs)} pairs (chosen = reference, rejected = lowest-scoring candidate; "
             f"{len(built.skipped)} films skipped) -> {pairs_file}"))

    clock = time.time()
    train_out = out_dir / "train"
    launch = mpo_launch(sft_model, pairs_file, train_out, s)
    earlier = run_folders(train_out)
    log(step(f"MPO round ({MPO_RECIPE} recipe, LoRA on the SFT model): {launch.render()}"))
    train_log = out_dir / "train.log"
    with open(train_log, "w") as logf:
        proc = subprocess.run(launch.argv, env=launch_environment(launch, env), stdout=logf,
                              stderr=subprocess.STDOUT, cwd=out_dir, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"swift rlhf failed (exit {proc.returncode}); see {train_log}")
    run = launched_run(train_out, earlier)
    adapter = find_checkpoint(run)
    t["mpo_train"] = time.time() - clock

    clock = time.time()
    preds = host.predict(PredictRequest(sft_model, val_jsonl, out_dir.parent / "predictions-mpo.jsonl",
                                        adapters=[adapter], max_new_tokens=max_new_tokens))
    after = evaluate_predictions(preds)["corpus"]
    counts, lines = read_attributes(preds)
    t["predict_mpo"] = time.time() - clock
    log(step(f"model after MPO scored on {val_jsonl}"))
    texts = {p.id: p.prediction for p in load_predictions(preds)}
    changed = None
    if sft_predictions:
        sft_texts = {p.id: p.prediction for p in load_predictions(sft_predictions)}
        changed = sum(sft_texts.get(k, "").strip() != v.strip() for k, v in texts.items())
    return MpoResult(after, counts, lines, texts, reward_rows(run), len(built.pairs), sampled,
                     {"mpo_candidates": str(candidates), "mpo_pairs": str(pairs_file),
                      "mpo_pairs_report": built.outputs["report"], "mpo_adapter": str(adapter),
                      "predictions_mpo": str(preds), "mpo_train_log": str(train_log)}, t, changed)
