"""AnnotateConfig.fingerprint(): a dataset's identity changes with output settings only."""
from __future__ import annotations

import dataclasses

import pytest

from annotators.pipeline import AnnotateConfig

# a changed value for every field (the defaults are the baseline)
CHANGED = {
    "min_s": 2.0, "max_frames": 96, "merge_gap_frames": 4, "reader": "pyav", "color_conversion": "swscale",
    "decode_short_side": 360, "decode_max_long_side": 640, "min_side": 64, "max_side": 4096,
    "tracker_repo": "owner/repo", "tracker": "other", "tracker_source": "github",
    "tracker_kwargs": {"num_hands": 1}, "presence_every_s": 0.5, "read_ahead_chunks": 0, "max_gap": 3, "smooth_window": 9,
    "smooth_polyorder": 3, "mano_dir": "/mano", "mano_iterations": 3, "captioners": ("kinematic",),
    "vlm": "some/vlm", "vlm_frames": 8, "vlm_max_new_tokens": 64, "vlm_batch_size": 16,
    "min_presence": 0.5, "max_jitter": 30.0, "max_bone_cv": 0.2, "hand_fit": "lift", "fit_iterations": 3, "fit_pose_sigma": 0.35,
    "quality_action": "mark", "max_reproj": 0.02, "max_depth_jump": 0.05, "max_fit_rejected": 0.5,
}
GATED = {"mano_iterations": "mano_dir", "vlm_frames": "vlm", "vlm_max_new_tokens": "vlm"}
SPEED_ONLY = {"vlm_batch_size", "read_ahead_chunks"}


def test_every_field_has_a_changed_value_here():
    assert set(CHANGED) == {f.name for f in dataclasses.fields(AnnotateConfig)}


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_fingerprint_follows_the_output_rule_of_each_field(name):
    base = AnnotateConfig()
    changed = AnnotateConfig(**{name: CHANGED[name]})
    if name in SPEED_ONLY:
        assert changed.fingerprint() == base.fingerprint()
        assert name not in changed.output_settings()
    elif name in GATED:  # counts only when its gate is set
        assert changed.fingerprint() == base.fingerprint()
        gate = {GATED[name]: CHANGED[GATED[name]]}
        assert AnnotateConfig(**gate, **{name: CHANGED[name]}).fingerprint() != AnnotateConfig(**gate).fingerprint()
    else:
        assert changed.fingerprint() != base.fingerprint()


def test_speed_settings_do_not_make_another_dataset(tmp_path):
    from flows.config import BuildConfig
    from storage.ledger import Ledger
    from storage.resume import SettingsMismatch, check_settings

    def settings(**annotate):
        return BuildConfig(videos=("v.mp4",), out=str(tmp_path), annotate=annotate).settings()

    ledger = Ledger(tmp_path)
    check_settings(ledger, *settings(vlm_batch_size=2, mano_iterations=5))
    check_settings(ledger, *settings(vlm_batch_size=8, vlm_frames=2))  # no VLM, no MANO: same dataset
    with pytest.raises(SettingsMismatch, match=r"\(max_jitter: 60.0 -> 10\)"):  # names only what matters
        check_settings(ledger, *settings(max_jitter=10, vlm_batch_size=1))


def test_a_dataset_built_before_the_fit_refuses_a_resume_naming_the_new_settings(tmp_path):
    """A dataset built before the rigid fit existed stored settings without it: a resume with the
    defaults (which now fit the hands) is refused, and the message names what changed."""
    import hashlib
    import json

    from flows.config import BuildConfig
    from storage.ledger import Ledger
    from storage.resume import SettingsMismatch, check_settings

    new = ("hand_fit", "fit_iterations", "fit_pose_sigma", "quality_action", "max_reproj", "max_depth_jump",
           "max_fit_rejected")
    fingerprint, settings = BuildConfig(videos=("v.mp4",), out=str(tmp_path)).settings()
    before = {k: v for k, v in settings.items() if k not in new}  # what the earlier build stored
    old_fp = hashlib.sha256(json.dumps(before, sort_keys=True, default=str).encode()).hexdigest()[:16]
    ledger = Ledger(tmp_path)
    check_settings(ledger, old_fp, before)
    with pytest.raises(SettingsMismatch) as e:
        check_settings(ledger, fingerprint, settings)
    assert "hand_fit: None -> 'rigid'" in str(e.value) and "max_reproj: None -> 0.01" in str(e.value)
    with pytest.raises(ValueError, match=r"hand_fit must be one of \('rigid', 'lift'\)"):
        AnnotateConfig(hand_fit="mano")
    with pytest.raises(ValueError, match=r"quality_action must be one of \('drop', 'mark'\)"):
        AnnotateConfig(quality_action="delete")


def test_settings_the_layout_fixes_are_refused_naming_them(tmp_path):
    from flows.config import BuildConfig

    with pytest.raises(ValueError, match=r"'fps'.*fixed at 15 fps"):
        BuildConfig(videos=["v.mp4"], out=str(tmp_path), annotate={"fps": 10}).annotate_config()
    with pytest.raises(ValueError, match="max_frames must be in 1..144"):
        BuildConfig(videos=["v.mp4"], out=str(tmp_path), annotate={"max_frames": 200}).annotate_config()
    with pytest.raises(ValueError, match="given twice"):
        BuildConfig(videos=["v.mp4"], out=str(tmp_path), tracker="a", annotate={"tracker": "b"}).annotate_config()


def test_build_options_reach_the_annotators_by_the_same_name(tmp_path):
    from flows.config import ANNOTATOR_FIELDS, BuildConfig

    given = {"tracker": "hamer", "tracker_repo": "/repo", "vlm": "some/vlm"}
    acfg = BuildConfig(videos=["v.mp4"], out=str(tmp_path), **given).annotate_config()
    assert all(getattr(acfg, k) == v for k, v in given.items())
    assert set(ANNOTATOR_FIELDS) <= {f.name for f in dataclasses.fields(AnnotateConfig)}


def test_unknown_reader_or_colour_conversion_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"color_conversion must be one of \('exact', 'swscale'\), got 'bt709'"):
        AnnotateConfig(color_conversion="bt709")
    with pytest.raises(ValueError, match=r"reader must be one of"):
        AnnotateConfig(reader="ffmpeg")
