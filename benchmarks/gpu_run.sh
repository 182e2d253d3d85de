#!/usr/bin/env bash
# The GPU run of the generation benchmark (issue 17), in one command:
#
#     bash benchmarks/gpu_run.sh            # on a CUDA machine, from the repository root
#
# Builds the ~100M-parameter model offline (tests/tiny_model.py, no hub access), then runs
# every arm of benchmarks/generation.py on it: ours (generation: own), transformers'
# continuous batching (generation: continuous: paged attention, block sharing, CUDA graphs
# where the library uses them), static left-padded batching and the naive per-turn
# `generate` loop; 32 debates x 3 rounds, ~2,000-token sources, 100-token greedy turns.
# Attention: flash_attention_2 when the flash-attn package is importable (the library's
# continuous batching then uses its varlen / paged kernels), else SDPA.
# It prints the per-arm table, the ratio lines and the `generation: auto` choice the
# figures imply; record them in benchmarks/README.md and, if the choice is `continuous`,
# set AUTO_GENERATION["cuda"] in debate/backends/transformers_backend.py.
#
# Expected time on one modern GPU: a few minutes (model build ~20 s, continuous batching
# warm-up up to ~1 min, naive arm ~1 min); a hard limit of LIMIT seconds (default 470,
# under 8 minutes) stops it.
#
# Overrides (environment): DEVICE (cuda), SHAPES (100m; comma-separated, also tiny, 25m),
# DEBATES (32), ROUNDS (3), SOURCE_TOKENS (2000), TURN_TOKENS (100), SLOW_DEBATES (8),
# DTYPE (auto: bf16 on CUDA), ATTN (auto), LIMIT (470), PYTHON. Extra arguments go to
# benchmarks/generation.py. A CPU smoke test of this script (minutes, tiny shape):
#     DEVICE=cpu SHAPES=tiny DEBATES=4 ROUNDS=2 SOURCE_TOKENS=300 TURN_TOKENS=16 \
#         SLOW_DEBATES=2 bash benchmarks/gpu_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DEVICE=${DEVICE:-cuda}
SHAPES=${SHAPES:-100m}
LIMIT=${LIMIT:-470}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

"$PYTHON" - "$DEVICE" <<'EOF'
import sys
import torch
device = sys.argv[1]
print(f"torch {torch.__version__}; CUDA available: {torch.cuda.is_available()}")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("gpu_run.sh: DEVICE=cuda but torch sees no CUDA device (set DEVICE=cpu for a smoke test)")
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
EOF

ATTN=${ATTN:-auto}
if [ "$ATTN" = auto ]; then
    if [ "${DEVICE%%:*}" = cuda ] && "$PYTHON" -c "import flash_attn" 2>/dev/null; then
        ATTN=flash_attention_2
    else
        ATTN=sdpa
    fi
fi
echo "attention: $ATTN; shapes: $SHAPES; device: $DEVICE; limit ${LIMIT}s"

start=$(date +%s)
status=0
timeout "$LIMIT" "$PYTHON" benchmarks/generation.py \
    --device "$DEVICE" --dtype "${DTYPE:-auto}" --attn "$ATTN" --shapes "$SHAPES" \
    --debates "${DEBATES:-32}" --rounds "${ROUNDS:-3}" --source-tokens "${SOURCE_TOKENS:-2000}" \
    --turn-tokens "${TURN_TOKENS:-100}" --slow-debates "${SLOW_DEBATES:-8}" --reps 1 "$@" \
    || status=$?
echo "gpu_run.sh: finished in $(( $(date +%s) - start ))s with status $status"
exit "$status"
