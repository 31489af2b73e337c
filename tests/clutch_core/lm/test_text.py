"""The text tokenizer trained on the captions: the same captions always give the same vocabulary."""
from clutch_core.lm.text import canonical_scores


def test_near_tied_pieces_get_their_scores_by_name_whatever_the_trainer_handed_out():
    a = [("the", -3.2), ("v", -11.957628), ("y", -11.957728), ("q", -11.957828), ("hand", -4.0)]
    b = [("the", -3.2), ("y", -11.957628), ("q", -11.957728), ("v", -11.957828), ("hand", -4.0000001)]
    assert canonical_scores(a) == canonical_scores(b)
    assert canonical_scores(a) == [("the", -3.2), ("hand", -4.0), ("q", -11.957628), ("v", -11.957728),
                                   ("y", -11.957828)]
    # pieces whose scores really differ keep their order
    assert [p for p, _ in canonical_scores([("b", -1.0), ("a", -2.0)])] == ["b", "a"]
