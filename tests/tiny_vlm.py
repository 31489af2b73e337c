"""A tiny random-weight Idefics3 (SmolVLM architecture) built offline, for captioner tests.

The weights are random, so its text is noise: tests check the code path (prompting,
batching, decoding, loading from a folder), never caption quality.
"""
from __future__ import annotations

from pathlib import Path

WORDS = "the a hand hands left right moves picks up cup plate knife opens closes one sentence what action object".split()
SPECIAL = ["<unk>", "<pad>", "<end_of_utterance>", "<image>", "<fake_token_around_image>", "<global-img>",
           "<|im_start|>", "User", "Assistant", ":"]
CHAT_TEMPLATE = (
    "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_tiny_vlm(folder: str | Path) -> Path:
    """Write processor + model files into folder (loadable with AutoProcessor / AutoModelForImageTextToText)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, PreTrainedTokenizerFast
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    folder = Path(folder)
    vocab = {t: i for i, t in enumerate(SPECIAL + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<end_of_utterance>")
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 32},
                                       max_image_size={"longest_edge": 32})
    proc = Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=1, chat_template=CHAT_TEMPLATE)
    torch.manual_seed(0)
    cfg = Idefics3Config(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        text_config=dict(model_type="llama", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, vocab_size=len(tok),
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id),
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        pad_token_id=tok.pad_token_id,
    )
    model = Idefics3ForConditionalGeneration(cfg).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    # random weights: keep it from emitting special tokens only, so decoded answers are words
    model.generation_config.suppress_tokens = [vocab[t] for t in SPECIAL]
    proc.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
