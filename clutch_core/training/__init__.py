"""What every trainer (SHIFT, the VQ-VAE and RVQ baselines, the language-model stages) shares.

    schedule    the learning rate at a step
    optim       AdamW and its parameter groups
    precision   one meaning of amp=auto (bf16 on CUDA; on native-bf16 CPUs when measured faster)
    progress    the terminal bar and the step/loss/ETA log lines
    stage       device set-up, stage completeness, log trimming on resume
    checkpoint  atomic writes, self-checking tensor files, training-state checkpoints
"""

# torch-free, so the flows' configs and the CLI can show them at start-up
AMP_CHOICES = ("auto", "bf16", "off")
AMP_HELP = ("bf16 autocast: auto (default) = bf16 on CUDA, and on CPUs with native bf16 (AVX512-BF16, AMX) when "
            "a short measurement of its first 5 steps finds it faster; bf16 = always; off = float32")
