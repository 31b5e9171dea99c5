#!/bin/bash
# Issue #18's GPU measurements, in parts that each fit one 10-minute device call (one H100 or H200):
#   bash benchmarks/planner_gpu.sh lora8    SDPA backends at 8B's shapes, then 8B LoRA: native vs plan (profiled)
#   bash benchmarks/planner_gpu.sh small    1B LoRA: native vs plan vs plan with SDPA's padding mask (planx:
#                                           skip_padding false), profiled; then 1B full: native vs plan (profiled)
#   bash benchmarks/planner_gpu.sh full8    8B full: native vs plan (and the plan for 80 GiB, if it differs)
#   bash benchmarks/planner_gpu.sh memory   peak memory, checkpointing half / none, 1B/2B/8B LoRA/full (plain loop)
#   bash benchmarks/planner_gpu.sh mixed    mixed-length data (clips of 8-32 frames, summaries of 1-8 sentences),
#                                           8B LoRA (CONFIG=1b-lora: 1B): native vs plan vs plan + ivl3_length_group,
#                                           after benchmarks/left_padding_check.py (left vs right padding on the GPU)
#   bash benchmarks/planner_gpu.sh sweep    the cost model's missing rows: CONFIG (default 1b-full) at each micro-batch
#                                           of MBS (default "2 4 16"), checkpointing off, compiled: ours only, one run each
# SIDES=a,b: the sides of lora8 / small's first run / full8 instead of the defaults (small: SIDES=none skips 1B LoRA,
# FULL_SIDES=none 1B full); PLANX_EXTRA='["--lora_dropout","0"]':
# lora8's planx side (an A/B of one swift argument); PLANX_CB='{"ivl3_compile":{"host_ahead":false}}': lora8's planx
# side with other callback settings (here: ms-swift's own waits on the GPU, the A/B of hosts/swift/host_ahead.py);
# in small, PLANX_CB replaces both runs' planx settings.  FULL_SIDES=native,plan,planx: small's 1B full run, its planx
# side with the frozen ViT's own kernels off (patch_matmul and gelu_epilogue false: the A/B of both).
# SIDE_TIMEOUT=S: seconds one side may run (default 300; a fresh machine compiles cold, give 1B more).
# Run from the repo root with the wheels in .whl (/work/shared/device/wheels.sh); results go to $OUT (or ./out)
# as one archive, res.tgz, and the tables are printed last.  `plan` sides use the SDPA backend the `lora8` part
# found fastest at the LLM's shape (cuDNN if >= 10 % faster than flash, else torch's default), read from
# /tmp/attn_choice when the machine is still warm, else torch's default (ATTN=cudnn or default: that one,
# and lora8 skips its SDPA measurement).
set -u
part=${1:?"part: lora8, small, full8, memory, mixed or sweep"}
OUT=${OUT:-$PWD/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ind HF_HUB_OFFLINE=1
T0=$(date +%s); END=$((T0 + ${BUDGET:-570}))
left() { local l=$(( END - $(date +%s) )); [ $l -lt 1 ] && l=1; echo $l; }
R=/tmp/res-$part; rm -rf "$R"; mkdir -p "$R"
if [ "$part" != memory ]; then
  [ -d /tmp/site/swift ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$R/gpu.txt"
if [ "$part" = lora8 ] && [ -z "${ATTN:-}" ]; then  # ATTN given: no need to measure the backends
  timeout 45 python3 benchmarks/step_profile.py --size 8B --attention --json "$R/attn.json" 2>&1 | grep ATTN
  python3 - "$R/attn.json" > /tmp/attn_choice <<'EOF' || echo default > /tmp/attn_choice
import json, sys
d = {r["name"]: r["ms"] for r in json.load(open(sys.argv[1]))}
f, c = d.get("LLM flash_attention gqa"), d.get("LLM cudnn_attention gqa")
print("cudnn" if f and c and c < 0.9 * f else "default")
EOF
fi
if [ "$part" = mixed ]; then  # left padding (the recipes' setting) on this GPU's SDPA kernels: seconds
  timeout 90 python3 benchmarks/left_padding_check.py 2>&1 | grep -E "loss right|device" | tee "$R/left_padding.txt"
fi
X=${ATTN:-$(cat /tmp/attn_choice 2>/dev/null || echo default)}
CB='{}'; [ "$X" = cudnn ] && CB='{"ivl3_compile":{"attention":"cudnn"}}'
echo "plan sides' attention: $X"
# small's planx sides unless PLANX_CB is given: 1B LoRA without skip_padding, 1B full without the ViT kernels
NO_SKIP='{"ivl3_compile":{"skip_padding":false}}'
NO_VIT_KERNELS='{"ivl3_compile":{"patch_matmul":false,"gelu_epilogue":false}}'
G="python3 benchmarks/gpu_train.py --steps 6 --warmup 2 --videos 64 --work /tmp/gt --timeout ${SIDE_TIMEOUT:-300} --plan-callback-args $CB"
case "$part" in
  lora8) timeout "$(left)" $G --configs 8b-lora --sides "${SIDES:-native,plan,plan80}" --torch-profile plan --profile-stacks \
           --planx-extra "${PLANX_EXTRA:-[]}" --planx-callback-args "${PLANX_CB:-{\}}" --out "$R/g.json" > "$R/g.txt" 2>&1 ;;
  small) [ "${SIDES:-}" = none ] || timeout "$(left)" $G --configs 1b-lora --sides "${SIDES:-native,plan,planx}" --torch-profile plan --out "$R/g.json" \
           --planx-callback-args "${PLANX_CB:-$NO_SKIP}" > "$R/g.txt" 2>&1
         [ "${FULL_SIDES:-}" = none ] || timeout "$(left)" $G --configs 1b-full --sides "${FULL_SIDES:-native,plan}" --torch-profile plan --out "$R/g2.json" \
           --planx-callback-args "${PLANX_CB:-$NO_VIT_KERNELS}" \
           >> "$R/g.txt" 2>&1 ;;
  full8) timeout "$(left)" $G --configs 8b-full --sides "${SIDES:-native,plan,plan80}" --out "$R/g.json" > "$R/g.txt" 2>&1 ;;
  mixed) timeout "$(left)" $G --configs "${CONFIG:-8b-lora}" --mixed 8-32 --sides native,plan,plang --out "$R/g.json" \
           > "$R/g.txt" 2>&1 ;;
  sweep) for mb in ${MBS:-2 4 16}; do  # host time per micro-batch vs per sample (speed.py's HOST_PER_SAMPLE)
           timeout "$(left)" $G --configs "${CONFIG:-1b-full}" --sides ours --ours-batch "$mb" \
             --ours-checkpointing off --ours-callback-args "$CB" --out "$R/g_mb$mb.json" >> "$R/g.txt" 2>&1
         done ;;
  memory) timeout "$(left)" python3 benchmarks/recipe_memory.py --sizes 8B,2B,1B --tuners full,lora --zero 0 \
            --checkpoint half,none --scaling "" --steps 2 --gpus 1 --group-timeout "$(( $(left) - 5 ))" \
            --out "$R/rm.json" --workdir /tmp/rm > "$R/rm.txt" 2>&1 ;;
  *) echo "unknown part $part"; exit 2 ;;
esac
echo "$part: rc $? after $(( $(date +%s) - T0 ))s"
[ -f "$R/g.txt" ] && grep -E "^\[|^config|^---|^1b|^8b|^ {4}" "$R/g.txt" | grep -v "model /tmp"
[ -f "$R/rm.txt" ] && grep -A16 "^Peak memory" "$R/rm.txt"
(cd /tmp && tar czf "$OUT/res.tgz" "res-$part" gt/runs/*/*/log.txt 2>/dev/null); true
