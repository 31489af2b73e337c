"""The names inside a run folder (RUN/), defined once: stage folders and the files every stage writes.

A leaf like the rest of layout/: it imports nothing of the project.

RUN/
  shift/                      the motion tokenizer stage (SHIFT, or a baseline)
    model.safetensors         final weights + codebooks (TOKENIZER_WEIGHTS)
    config.json               tokenizer config, stats, streams (TOKENIZER_CONFIG; written last)
  pretrain/ refine/ instruct/ the language-model stages
    model/                    a save_pretrained folder (MODEL_DIR) + motion_vocab.json (MOTION_VOCAB)
    text_tokenizer/           (pretrain, tiny preset) the text tokenizer trained on the captions
  eval/                       the evaluation report of the run
  <every training stage>/
    checkpoint.safetensors    training state (CHECKPOINT), the one before it as checkpoint.prev.safetensors
    train_log.jsonl           one line per log interval (TRAIN_LOG)
    val_log.jsonl             one line per validation (VAL_LOG)
    metrics.json              written last: the stage is complete (METRICS)
DATASET/tokens/<run>-<weights id>/   the motion tokens of a run's tokenizer (TOKENS_DIR)
"""
from __future__ import annotations

SHIFT_DIR = "shift"
LM_STAGES = ("pretrain", "refine", "instruct")
EVAL_DIR = "eval"

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS_CHECKPOINT = "checkpoint.prev.safetensors"
TRAIN_LOG = "train_log.jsonl"
VAL_LOG = "val_log.jsonl"
METRICS = "metrics.json"

TOKENIZER_WEIGHTS = "model.safetensors"
TOKENIZER_CONFIG = "config.json"
MODEL_DIR = "model"
MOTION_VOCAB = "motion_vocab.json"
TEXT_TOKENIZER = "text_tokenizer"

TOKENS_DIR = "tokens"
