#!/usr/bin/env bash
# The qrels teacher on SciFact, on a CPU: does the pipeline teach the demo model to rank?
# (see README.md beside this file). Every stage resumes: rerun the script after an interruption.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${DATA:-$HERE/../../../../shared/data/scifact}
WORK=${WORK:-$HOME/.cache/reasonrank/recipes/cpu-qrels}
SEED=${SEED:-0}                      # fixes the split and every window's shuffle
DEPTH=${DEPTH:-8}                    # passages a window: the BM25 top DEPTH
HELDOUT=${HELDOUT:-100}              # held-out queries
TRAIN=${TRAIN:-}                     # training queries (default: all the others; SciFact leaves 140)
PASSAGE_TOKENS=${PASSAGE_TOKENS:-32} # passages cut to this many tokens everywhere
BUDGET=${BUDGET:-128}                # reasoning budget when evaluating (an answer takes about 30 tokens)
EVAL_BATCH=${EVAL_BATCH:-32}         # windows decoded together when evaluating
EPOCHS=${EPOCHS:-2}
LR=${LR:-2e-4}
GRAD_ACCUM=${GRAD_ACCUM:-4}
GRPO_STEPS=${GRPO_STEPS:-30}         # 0 skips GRPO
GRPO_LR=${GRPO_LR:-2e-5}
PRECISION=${PRECISION:---bf16}      # bf16 autocast when training (AMX CPUs: 1.7x fp32); --no-bf16 for fp32
mkdir -p "$WORK"
cd "$WORK"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$WORK/progress.log"; }
evaluate() {  # evaluate MODEL OUT
  [[ -s "$2" ]] && return 0
  log "evaluate $1 on the held-out windows -> $2"
  reasonrank-train evaluate --model "$1" -i split/heldout.jsonl --qrels "$DATA/qrels.trec" --window-size "$DEPTH" \
    --max-passage-tokens "$PASSAGE_TOKENS" --reasoning-budget "$BUDGET" --batch-size "$EVAL_BATCH" -o "$2.tmp"
  mv "$2.tmp" "$2"
}

if [[ ! -s split/split.json ]]; then
  log "split SciFact: BM25 top $DEPTH, $HELDOUT held out, ${TRAIN:-the rest} to train, seed $SEED, windows shuffled"
  reasonrank-train split -i "$DATA" -o split --depth "$DEPTH" --heldout "$HELDOUT" ${TRAIN:+--train "$TRAIN"} --seed "$SEED"
fi
reasonrank-train teach -i split/train.jsonl --qrels "$DATA/qrels.trec" -o teacher.jsonl

log "student folder"
STUDENT=$(python -c "from reasonrank_plugins.demo_model import demo_model_folder; print(demo_model_folder())")
evaluate "$STUDENT" eval_base.json

if [[ ! -s sft-exported/config.json ]]; then
  log "LoRA SFT on the qrels teacher's records"
  reasonrank-train sft -i teacher.jsonl --model "$STUDENT" -o sft --lora --lora-r 16 --learning-rate "$LR" \
    --epochs "$EPOCHS" --batch-size 1 --grad-accum "$GRAD_ACCUM" --max-passage-tokens "$PASSAGE_TOKENS" --no-measure-loss \
    "$PRECISION"
  reasonrank-train export --model sft -o sft-exported
fi
evaluate sft-exported eval_sft.json

reports=(eval_base.json eval_sft.json)
if (( GRPO_STEPS > 0 )); then
  if [[ ! -s grpo-exported/config.json ]]; then
    log "GRPO from the SFT model: $GRPO_STEPS steps, 4 generations"
    reasonrank-train grpo -i teacher.jsonl --model sft-exported -o grpo --lora --lora-r 16 --learning-rate "$GRPO_LR" \
      --max-steps "$GRPO_STEPS" --num-generations 4 --batch-size 4 --max-completion-length 128 \
      --max-passage-tokens "$PASSAGE_TOKENS" --save-steps 2 "$PRECISION"  # a stopped run resumes at its last even step
    reasonrank-train export --model grpo -o grpo-exported
  fi
  evaluate grpo-exported eval_grpo.json
  reports+=(eval_grpo.json)
fi

log "compare on the same held-out windows"
reasonrank-train compare "${reports[@]}" | tee compare.txt
log "done"
