"""SHIFT: the hand-motion tokenizer of CLUTCH (train-clutch stage 1) and its plain VQ-VAE baseline."""
