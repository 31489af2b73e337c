"""The text tokenizer trained on the captions: whole words, no unknown character, the same ids every time."""
import subprocess
import sys

from clutch_core.lm.text import train_text_tokenizer

CAPTIONS = ["The person's right hand extends the index finger to point.", "The left hand waves side to side.",
            "Both hands rest.", "The right hand grasps the cup, lifts it and then puts it down."] * 20


def test_frequent_words_are_one_token_and_prompts_have_no_unknown_character(tmp_path):
    tok = train_text_tokenizer(CAPTIONS, 800, tmp_path / "t")
    assert tok.tokenize("The person's right hand extends the index finger") == [
        "\u2581The", "\u2581person's", "\u2581right", "\u2581hand", "\u2581extends", "\u2581the", "\u2581index", "\u2581finger"]
    ids = tok("Generate 2.5 seconds of hand motion: A hand juggles #3 (quickly)!")["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "Generate 2.5 seconds of hand motion: A hand juggles #3 (quickly)!"


def test_the_same_captions_give_the_same_tokenizer_in_another_process(tmp_path):
    code = ("import sys; from clutch_core.lm.text import train_text_tokenizer; "
            f"train_text_tokenizer({CAPTIONS!r}, 800, sys.argv[1])")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
