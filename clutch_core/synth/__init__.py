"""Synthetic 3D-HIW corpus: primitive-composed two-hand motions with generated captions.

The corpus is synthetic (no video behind it); it exists so training, evaluation and
storage can be tested and benchmarked at scale without the real dataset.
"""
from clutch_core.synth.corpus import SynthConfig, write_corpus

__all__ = ["SynthConfig", "write_corpus"]
