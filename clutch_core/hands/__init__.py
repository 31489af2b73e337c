"""Hand conventions of CLUTCH: rotations, the 21-joint skeleton on MANO's tree (FK/IK), the
198-float motion frame, and MANO through smplx. Import from the submodules (see docs/hands.md)."""
