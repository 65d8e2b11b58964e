import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.scene.chiral import ChiralPrism, outline_mask
from nanofind.scene.crystal import CrystalGenerator
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.orientation import rotation_about_axis
from nanofind.simulate.chiral import chiral_particle_images

# one carbon patch and few images keep these tests to a few seconds
FAST = {"substrate_pool": 1, "size_A_range": (28.0, 36.0)}


def _reflection_axes(prism: ChiralPrism, n: int = 720, tol: float = 1e-9) -> list[int]:
    """Mirror lines of the outline: j such that r(θ_k) == r(θ_{j-k}) for every k (axis at πj/n)."""
    r = prism.outline_radius_A(2 * np.pi * np.arange(n) / n)
    k = np.arange(n)
    return [j for j in range(n) if np.max(np.abs(r - r[(j - k) % n])) < tol]


def test_left_outline_is_the_exact_mirror_of_the_right():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-25, 25, size=(20_000, 2))
    for strength in (0.3, 1.0):
        right = ChiralPrism(40, 10, "right", strength)
        left = ChiralPrism(40, 10, "left", strength)
        assert np.array_equal(left.contains_xy(pts), right.contains_xy(pts * [-1, 1]))
        assert not np.array_equal(left.contains_xy(pts), right.contains_xy(pts))
        assert np.array_equal(outline_mask(left, (64, 64), 0.8), outline_mask(right, (64, 64), 0.8)[:, ::-1])
        assert right.mirrored().hand == "left"


def test_mirror_holds_for_the_turned_prism_and_its_atoms():
    turn = rotation_about_axis([0, 0, 1], 37.0)
    right = ChiralPrism(30, 8, "right", 1.0).transformed(turn, (5.0, -3.0, 2.0))
    left = ChiralPrism(30, 8, "left", 1.0).transformed(turn, (5.0, -3.0, 2.0))
    mirror = turn @ np.diag([-1.0, 1.0, 1.0]) @ turn.T  # x -> -x in the prism frame
    pts = np.random.default_rng(1).uniform(-20, 20, size=(20_000, 3)) + [5.0, -3.0, 2.0]
    mirrored = (pts - [5.0, -3.0, 2.0]) @ mirror.T + [5.0, -3.0, 2.0]
    assert np.array_equal(left.contains(pts), right.contains(mirrored))
    # a simple cubic lattice aligned with the prism frame (and a lattice site on its axis) is its own
    # mirror image, so the atoms kept mirror too
    from ase import Atoms

    cubic = Atoms("Au", cell=np.eye(3) * 1.5, pbc=True)
    right, left = (ChiralPrism(30, 8, hand, 1.0).transformed(turn) for hand in ("right", "left"))
    a = CrystalGenerator(cubic, turn).generate(right).positions
    b = CrystalGenerator(cubic, turn).generate(left).positions
    b_mirrored = b @ mirror.T
    assert len(a) == len(b) > 500
    key = lambda p: np.round(p, 6)[np.lexsort(np.round(p, 6).T)]  # noqa: E731
    assert np.allclose(key(a), key(b_mirrored))


def test_zero_facet_strength_is_achiral_and_positive_strength_chiral():
    flat = ChiralPrism(40, 10, "right", 0.0)
    assert _reflection_axes(flat)  # the plain rounded triangle has mirror lines
    assert np.array_equal(outline_mask(flat, (64, 64), 0.8), outline_mask(flat.mirrored(), (64, 64), 0.8))
    for strength in (0.2, 1.0):
        assert _reflection_axes(ChiralPrism(40, 10, "right", strength)) == []
    assert flat.outline_radius_A(np.linspace(0, 2 * np.pi, 100)).max() == pytest.approx(20.0)


def test_prism_rejects_bad_parameters():
    with pytest.raises(NanofindInputError, match="hand must be"):
        ChiralPrism(40, 10, "up")
    with pytest.raises(NanofindInputError, match=r"facet_strength must be in \[0, 1\], got 1.5"):
        ChiralPrism(40, 10, "right", 1.5)
    with pytest.raises(NanofindInputError, match="must be > 0"):
        ChiralPrism(-1, 10)


def test_images_shape_dtype_determinism_and_per_item_seeds():
    hands = ["right", "left", "right"]
    images, records = chiral_particle_images(3, hands=hands, seed=5, **FAST)
    assert images.shape == (3, 64, 64) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.std(axis=(1, 2)).min() > 0
    assert [r["hand"] for r in records] == hands
    again, records_again = chiral_particle_images(3, hands=hands, seed=5, **FAST)
    assert np.array_equal(images, again) and records == records_again
    # item i depends only on (seed, i): a shorter run repeats the first items exactly
    first, _ = chiral_particle_images(2, hands=hands[:2], seed=5, **FAST)
    assert np.array_equal(first, images[:2])
    other, _ = chiral_particle_images(1, hands=hands[:1], seed=6, **FAST)
    assert not np.array_equal(other[0], images[0])


def test_particle_footprint_lies_inside_the_frame_and_per_item_settings_apply():
    sizes = np.array([[26.0, 28.0], [36.0, 38.0]])
    images, records = chiral_particle_images(2, hands=["left", "right"], seed=3, size_A_range=sizes,
                                             facet_strength=[0.2, 0.9], substrate_pool=1, margin_A=3.0)
    field = 64 * 0.8
    for r, (lo, hi), strength in zip(records, sizes, (0.2, 0.9), strict=True):
        x0, y0, x1, y1 = r["particle_bbox_A"]
        assert 3.0 <= x0 < x1 <= field - 3.0 and 3.0 <= y0 < y1 <= field - 3.0
        assert lo <= r["size_A"] <= hi and max(x1 - x0, y1 - y0) <= r["size_A"]
        assert r["facet_strength"] == strength and r["n_particle_atoms"] > 100
    assert images.shape == (2, 64, 64)
    _, exact = chiral_particle_images(2, hands=["left", "right"], seed=3, size_A=[27.0, 37.0], substrate_pool=1)
    assert [r["size_A"] for r in exact] == [27.0, 37.0]


def test_image_generator_rejects_bad_input():
    with pytest.raises(ValueError, match="hands must have length n = 2, got 1"):
        chiral_particle_images(2, hands=["right"], seed=0)
    with pytest.raises(ValueError, match=r"hands must be 'right' or 'left', got \['up'\]"):
        chiral_particle_images(1, hands=["up"], seed=0)
    with pytest.raises(ValueError, match="do not fit"):
        chiral_particle_images(1, hands=["right"], seed=0, size_A_range=(60.0, 60.0))
    with pytest.raises(ValueError, match=r"facet_strength must be a scalar or have shape \(2,\)"):
        chiral_particle_images(2, hands=["right", "left"], seed=0, facet_strength=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"size_A_range must be a \(low, high\) pair or have shape \(3, 2\)"):
        chiral_particle_images(3, hands=["right"] * 3, seed=0, size_A_range=[30.0, 31.0, 32.0])


def test_particle_of_the_image_generator_is_an_au_crystal():
    unit_cell = load_unit_cell("Au")
    atoms = CrystalGenerator(unit_cell).generate(ChiralPrism(30, 12, "right", 1.0))
    assert set(atoms.numbers.tolist()) == {79}
    assert np.abs(atoms.positions[:, 2]).max() <= 6.0 + 1e-6
    assert np.hypot(atoms.positions[:, 0], atoms.positions[:, 1]).max() <= 15.0 + 1e-6
