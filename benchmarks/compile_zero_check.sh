#!/bin/bash
# Does ivl3_compile train under DeepSpeed ZeRO-2 / ZeRO-1 across 2 GPUs?  Tiny model, 4 steps each; prints
# each run's exit code, the compile line of each rank and the losses.  Not a benchmark: a GPU-only check
# (DeepSpeed needs GPUs here).  From the repo root on a 2-GPU machine with the wheels installed:
#   bash benchmarks/compile_zero_check.sh        (logs: $OUT/zero2.log, $OUT/zero1.log; OUT defaults to /tmp)
OUT=${OUT:-/tmp}
T=${T:-400}  # per run: the first step of a cold machine includes DeepSpeed's start and the compile
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 - <<'PY'
import sys; from pathlib import Path
sys.path.insert(0, "benchmarks"); import gpu_train as g
g.build_model("tiny", Path("/tmp/w/model"), "cuda"); g.make_data(Path("/tmp/w/data"), 16, 4, 96)
PY
for z in zero2 zero1; do
NPROC_PER_NODE=2 timeout $T python3 -m swift.cli.main sft --external_plugins ivl3_plugin/hosts/swift/external_plugin.py \
  --model /tmp/w/model --template ivl3_video --dataset /tmp/w/data/converted/swift/train.jsonl \
  --split_dataset_ratio 0 --tuner_type lora --torch_dtype bfloat16 --max_steps 4 --per_device_train_batch_size 1 \
  --gradient_accumulation_steps 2 --logging_steps 1 --save_strategy no --eval_strategy no --report_to none \
  --dataloader_num_workers 0 --check_model false --seed 0 --callbacks ivl3_compile --deepspeed $z \
  --output_dir /tmp/w/out_$z > $OUT/$z.log 2>&1
echo "$z rc=$?"; grep -h "ivl3 compile\|'loss'" $OUT/$z.log | cut -c1-160 | head -8
done
