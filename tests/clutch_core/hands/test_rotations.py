"""Rotation conversions: round trips, the hard angles (0 and pi), orthonormality, gradients."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clutch_core.hands.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rot6d_to_matrix,
)

finite = st.floats(-1.0, 1.0, allow_nan=False)
axes = st.tuples(finite, finite, finite).filter(lambda v: sum(x * x for x in v) > 1e-3)
EYE = torch.eye(3, dtype=torch.float64)


def _axis(v):
    a = torch.tensor(v, dtype=torch.float64)
    return a / a.norm()


def _assert_rotation(R, atol=1e-9):
    assert torch.allclose(R @ R.transpose(-1, -2), EYE.expand_as(R), atol=atol)
    assert torch.allclose(torch.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol)


def _same_rotation_aa(a, b, atol):
    """Axis-angle vectors equal up to the pi ambiguity (a ~ -a at angle pi)."""
    return torch.allclose(a, b, atol=atol) or (
        abs(a.norm().item() - math.pi) < 1e-6 and torch.allclose(a, -b, atol=atol)
    )


@settings(max_examples=200, deadline=None)
@given(axes, st.floats(0.0, math.pi, allow_nan=False))
def test_axis_angle_matrix_round_trip(v, angle):
    aa = _axis(v) * angle
    R = axis_angle_to_matrix(aa)
    _assert_rotation(R)
    back = matrix_to_axis_angle(R)
    assert torch.isfinite(back).all()
    assert _same_rotation_aa(back, aa, 1e-7)
    assert torch.allclose(axis_angle_to_matrix(back), R, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(axes, st.sampled_from([0.0, 1e-12, 1e-8, 1e-5, 1e-3]))
def test_near_zero_is_exact_and_finite(v, angle):
    aa = _axis(v) * angle
    R = axis_angle_to_matrix(aa)
    assert torch.allclose(R, EYE + torch.tensor([[0, -aa[2], aa[1]], [aa[2], 0, -aa[0]], [-aa[1], aa[0], 0]]), atol=1e-6)
    assert torch.allclose(matrix_to_axis_angle(R), aa, atol=1e-12)
    q = matrix_to_quaternion(R)
    assert torch.allclose(quaternion_to_axis_angle(q), aa, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(axes, st.sampled_from([0.0, 1e-10, 1e-7, 1e-4]))
def test_near_pi_keeps_the_axis(v, eps):
    axis = _axis(v)
    R = axis_angle_to_matrix(axis * (math.pi - eps))
    back = matrix_to_axis_angle(R)
    assert abs(back.norm().item() - (math.pi - eps)) < 1e-6
    # the axis is right up to the sign ambiguity that exists only at exactly pi
    assert abs(abs(torch.dot(back / back.norm(), axis).item()) - 1) < 1e-9
    if eps >= 1e-4:
        assert torch.allclose(back, axis * (math.pi - eps), atol=1e-7)
    assert torch.allclose(axis_angle_to_matrix(back), R, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.tuples(finite, finite, finite, finite).filter(lambda q: sum(x * x for x in q) > 1e-2))
def test_quaternion_round_trip_wxyz(qv):
    q = torch.tensor(qv, dtype=torch.float64)
    q = q / q.norm()
    R = quaternion_to_matrix(q)
    _assert_rotation(R)
    q2 = matrix_to_quaternion(R)
    assert q2[0] >= 0
    assert torch.allclose(q2, q if q[0] >= 0 else -q, atol=1e-9) or abs(q[0].item()) < 1e-9
    assert torch.allclose(quaternion_to_matrix(q2), R, atol=1e-9)
    aa = quaternion_to_axis_angle(q)
    assert torch.allclose(axis_angle_to_quaternion(aa), q if q[0] >= 0 else -q, atol=1e-9) or abs(q[0].item()) < 1e-9


def test_quaternion_is_scalar_first():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    q = matrix_to_quaternion(R)
    assert torch.allclose(q, torch.tensor([math.sqrt(0.5), 0, 0, math.sqrt(0.5)], dtype=torch.float64))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=6, max_size=6))
def test_rot6d_is_first_two_columns_and_orthonormalises(d):
    d6 = torch.tensor(d, dtype=torch.float64)
    a, b = d6[:3], d6[3:]
    R = rot6d_to_matrix(d6)
    _assert_rotation(R)  # any input, degenerate included, decodes to a rotation
    if a.norm() < 1e-2 or torch.linalg.cross(a, b).norm() < 1e-2 * a.norm() * b.norm():
        return
    assert torch.allclose(R[:, 0], a / a.norm(), atol=1e-9)
    assert torch.allclose(matrix_to_rot6d(R)[:3], R[:, 0]) and torch.allclose(matrix_to_rot6d(R)[3:], R[:, 1])
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(R)), R, atol=1e-9)


def test_batched_shapes_and_identity_6d():
    aa = torch.randn(4, 5, 3)
    R = axis_angle_to_matrix(aa)
    assert R.shape == (4, 5, 3, 3)
    assert matrix_to_quaternion(R).shape == (4, 5, 4)
    assert matrix_to_rot6d(R).shape == (4, 5, 6)
    assert matrix_to_rot6d(torch.eye(3)).tolist() == [1, 0, 0, 0, 1, 0]


def test_gradients_are_finite_at_zero_and_pi():
    ax = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    for aa0 in (torch.zeros(3, dtype=torch.float64), ax / ax.norm() * (math.pi - 1e-9)):
        aa = aa0.clone().requires_grad_(True)
        out = matrix_to_axis_angle(axis_angle_to_matrix(aa))
        (out * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
        assert torch.isfinite(aa.grad).all()
    d6 = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], requires_grad=True)
    rot6d_to_matrix(d6).sum().backward()
    assert torch.isfinite(d6.grad).all()
