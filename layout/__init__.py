"""The numbers of the 3D-HIW data layout, defined once and imported everywhere else.

A leaf: it imports nothing of the project, so every layer may use it.

Motion frame: FRAME_DIM = 198 floats = left hand (HAND_DIM = 99) then right hand (99).
One hand's 99 numbers:
    ORIENT  [0:6]    global orientation, 6D (first two columns of the rotation matrix)
    FINGERS [6:96]   15 finger joints x 6D, MANO joint order (joint j at 6+6j : 12+6j)
    TRANSL  [96:99]  wrist translation, metres
Clips: FPS frames per second, at most MAX_FRAMES frames (9.6 s).
Joints: NUM_JOINTS per hand in MEDIAPIPE_JOINT_NAMES order (what every joints array uses).
"""
from __future__ import annotations

FPS = 15.0
MAX_FRAMES = 144

SIDES = ("left", "right")  # index 0 and 1 of the hand axis everywhere
NUM_FINGER_JOINTS = 15
ROT6D = 6
ORIENT = slice(0, ROT6D)  # 6
FINGERS = slice(ROT6D, ROT6D + NUM_FINGER_JOINTS * ROT6D)  # 90
TRANSL = slice(FINGERS.stop, FINGERS.stop + 3)  # 3
HAND_DIM = TRANSL.stop  # 99
FRAME_DIM = len(SIDES) * HAND_DIM  # 198
# the SHIFT streams: trajectory = orientation + translation (9), pose = the finger joints (90)
TRAJ_IDX = (*range(ORIENT.start, ORIENT.stop), *range(TRANSL.start, TRANSL.stop))
POSE_IDX = tuple(range(FINGERS.start, FINGERS.stop))

NUM_JOINTS = 21
MEDIAPIPE_JOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
MANO_JOINT_NAMES = (  # 16 joints of MANO's tree, then the 5 fingertip vertices smplx/HaMeR append
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
    "thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip",
)
PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)  # of each joint, MediaPipe order
# joints_mediapipe[i] = joints_mano[MANO_TO_MEDIAPIPE[i]]
MANO_TO_MEDIAPIPE = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
# joints_mano[j] = joints_mediapipe[MEDIAPIPE_TO_MANO[j]]
MEDIAPIPE_TO_MANO = tuple(MANO_TO_MEDIAPIPE.index(j) for j in range(NUM_JOINTS))
