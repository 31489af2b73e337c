"""The CLUTCH language model: T5 with SHIFT motion tokens (docs/lm.md).

Stages: clutch_core.lm.train.run_stage("pretrain" | "refine" | "instruct", dataset, run, cfg).
Use: clutch_core.lm.api.generate (text -> motion), clutch_core.lm.api.caption (motion -> text).
"""
