"""MPO (Mixed Preference Optimization) settings for the preference recipes, with where each number comes from.

InternVL trains its ``-MPO`` models with trl's ``DPOTrainer`` and three losses on (chosen, rejected)
pairs: DPO's sigmoid preference loss (weight 0.8), BCO's pairwise quality loss (0.2) and the
chosen answer's NLL (``rpo_alpha`` 1).  ms-swift 4.6 runs the same with ``swift rlhf --rlhf_type dpo
--loss_type sigmoid bco_pair --loss_weights 0.8 0.2 --rpo_alpha 1`` (``RLHFArguments`` in
``swift/arguments/rlhf_args.py``; the losses in ``swift/rlhf_trainers/dpo_trainer.py``).

Official settings (``internvl_chat/shell/internvl2.0_mpo/…_mpo_full.sh``; the InternVL3 MPO guide
runs the same trainer): learning rate 5e-6, weight decay 0.05, warmup 0.03, cosine, 1 epoch,
gradient checkpointing, ZeRO-1, beta left at trl's default 0.1.  They train the LLM, projector and
ViT; our recipes keep the ViT frozen as the SFT recipes do (video frames, far more tiles per
sample).  InternVL publishes no LoRA MPO script: LoRA recipes use 1e-5, twice the full rate (LoRA's
few parameters move less per step; ms-swift's SFT LoRA rate is 5-10x the full one, but DPO drifts
from its reference fast, so we stay at the low end of 5e-6 … 1e-5).  Plain data: no host import.
"""
from __future__ import annotations

from typing import Any, Dict

OFFICIAL_MPO_URL = ("https://github.com/OpenGVLab/InternVL/blob/main/internvl_chat/shell/internvl2.0_mpo/"
                    "internvl2_8b_internlm2_7b_dynamic_res_mpo_full.sh")
MPO_LR = {"full": 5e-6, "lora": 1e-5}
MPO_ARGS: Dict[str, Any] = {
    "rlhf_type": "dpo",
    "loss_type": ["sigmoid", "bco_pair"],
    "loss_weights": [0.8, 0.2],
    "rpo_alpha": 1.0,
    "beta": 0.1,
}
# full-parameter MPO: the sizes whose policy + frozen reference copy fit the official SFT GPU counts
# without CPU offload by the planner (larger sizes: use the LoRA recipe, whose reference costs nothing)
MPO_FULL_SIZES = ("1B", "2B", "8B", "9B", "14B")
PAIRS_PLACEHOLDER = "<your preference pairs: dataset=PAIRS.jsonl (messages, rejected_response, videos)>"
