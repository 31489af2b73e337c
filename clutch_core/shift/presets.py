"""The tokenizer kinds and training presets by name, without torch: the flows' configs and the
CLI's choices import these at start-up (clutch_core.shift.train builds the TrainConfig from them)."""
from __future__ import annotations

from typing import Any

TOKENIZERS = ("shift", "vqvae", "rvq")

PRESETS: dict[str, dict[str, Any]] = {
    # CPU: small nets, small codebooks; 800 steps keep the whole tiny train-clutch (every stage) near
    # 10 minutes on a quiet 2-core CPU (BENCHMARKS.md, "The tiny preset end to end")
    "tiny": dict(width=128, code_dim=128, codes=512, batch=32, window=64, lr=5e-4, warmup_steps=100,
                 max_steps=800, ckpt_every=200),
    # CPU, longer: the tiny nets trained 2.5x as long, for the `small` language model (every default stage
    # of train-clutch within 45 minutes on a quiet 2-core CPU)
    "small": dict(width=128, code_dim=128, codes=512, batch=32, window=64, lr=5e-4, warmup_steps=100,
                  max_steps=2000, ckpt_every=250),
    # The authors' SHIFT (GPU). Source of each value: their released configs
    # release_checkpoints/20_07_..._cb4K_d064_decomp_{hp,traj}_down02/input_train_config.yaml
    # in github.com/bala1144/CLUTCH:
    #   width 512, depth 3, growth 3, down 2   <- motion_vae: width, depth, dilation_growth_rate, down_t
    #   codes 4096, code_dim 64                <- code_num, code_dim (= output_emb_width 64)
    #   commit_weight 0.25                     <- LOSS.LAMBDA_COMMIT
    #   vel_weight 1.0                         <- LOSS.LAMBDA_VELOCITY of the trajectory model (ours
    #                                             applies velocity only to the trajectory dims)
    #   lr 2e-4, betas (0.9, 0.99), wd 0       <- TRAIN.OPTIM
    #   batch 512                              <- TRAIN.BATCH_SIZE
    # Ours, not theirs: window 64 frames (they sample up to max_frames 144 at 15 fps), warm-up
    # 1000 steps, max_steps 300k (they train 2000 epochs), mu 0.99 (T2M-GPT's EMA decay).
    "paper": dict(width=512, depth=3, growth=3, down=2, code_dim=64, codes=4096, commit_weight=0.25,
                  vel_weight=1.0, batch=512, window=64, lr=2e-4, betas=(0.9, 0.99), weight_decay=0.0,
                  warmup_steps=1000, max_steps=300_000, ckpt_every=2000, log_every=50),
}
