"""Entry point for torchrun in tests/test_scale_torchrun.py: train the tokenizer stage on DATASET into RUN.

usage: torchrun --nproc_per_node N tests/torchrun_shift.py DATASET RUN '{"max_steps": 20, ...}'
"""
import json
import sys

import torch

from clutch_core.shift.train import preset_config, train_tokenizer

if __name__ == "__main__":
    dataset, run, settings = sys.argv[1:4]
    torch.set_num_threads(1)
    train_tokenizer(dataset, run, preset_config("tiny", **json.loads(settings)), progress=False)
