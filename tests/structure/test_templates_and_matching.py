"""Templates and the Eq. 2.1 order parameter against geometry with known answers."""

import numpy as np
import pytest

from nanofind.scene.orientation import random_rotation
from nanofind.structure.matching import fit_templates
from nanofind.structure.templates import TEMPLATE_NAMES, hcp_within_fcc, template


def _sites(vectors: np.ndarray, count: int, rng, noise_A: float = 0.0, nn_A: float = 2.88) -> np.ndarray:
    """``count`` randomly rotated copies of a template's neighbour shell, in Å, sorted by length."""
    out = []
    for _ in range(count):
        v = vectors @ random_rotation(rng).T * nn_A + rng.normal(0, noise_A, vectors.shape)
        out.append(v[np.argsort(np.linalg.norm(v, axis=1), kind="stable")])
    return np.array(out)


@pytest.mark.parametrize("name,size,neighbours_touching", [
    ("fcc", 12, 4), ("hcp", 12, 4), ("icosahedral", 12, 5), ("fivefold", 12, None), ("bcc", 14, None)])
def test_templates_are_the_textbook_polyhedra(name, size, neighbours_touching):
    v = template(name).vertices
    assert len(v) == size
    nearest = np.linalg.norm(v, axis=1).min()
    assert nearest == pytest.approx(1.0)
    if neighbours_touching is not None:  # every vertex touches this many others at the nearest distance
        d = np.linalg.norm(v[:, None] - v[None], axis=-1)
        touching = (np.abs(d - d[d > 1e-9].min()) < 0.06).sum(axis=1)
        assert set(touching.tolist()) == {neighbours_touching}


def test_symmetry_leaves_few_starting_frames():
    # cuboctahedron: 24 proper rotations act on 48 ordered 60° pairs -> 2 orbits; one orbit of
    # right-handed triangles. Anticuboctahedron (D3, 6 rotations): 8 pair orbits, 4 triangle orbits.
    assert len(template("fcc").frames) == 2
    assert len(template("fcc").triangles) == 1
    assert len(template("hcp").frames) == 8
    assert len(template("hcp").triangles) == 4
    assert len(template("icosahedral").frames) == 1  # 60 rotations, 60 ordered edges


def test_hcp_shares_nine_vertices_with_fcc():
    q, unmatched = hcp_within_fcc()
    fcc, hcp = template("fcc").vertices, template("hcp").vertices
    assert q.shape == (8, 3, 3) and unmatched.shape == (8, 3)
    for rot, left in zip(q, unmatched, strict=True):
        assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1.0)
        hit = np.abs((hcp @ rot.T)[:, None] - fcc[None]).sum(-1) < 1e-6
        assert hit.any(axis=1).sum() == 9
        assert set(np.flatnonzero(~hit.any(axis=0)).tolist()) == set(left.tolist())


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_a_perfect_site_scores_its_full_order_in_any_orientation(name):
    rng = np.random.default_rng(3)
    tpl = template(name)
    sites = _sites(tpl.vertices, 50, rng)
    if tpl.size < 14:  # pad with two far neighbours, as a crystal's second shell would be
        far = rng.normal(size=(50, 2, 3))
        far = 2.88 * 1.9 * far / np.linalg.norm(far, axis=-1, keepdims=True)
        sites = np.concatenate([sites, far], axis=1)
    fit = fit_templates(sites)[name]
    assert np.allclose(fit.order, tpl.size, atol=1e-3)
    # the fitted rotation maps the template onto the neighbours
    predicted = np.einsum("nij,mj->nmi", fit.rotation, tpl.vertices) * 2.88
    gap = np.linalg.norm(predicted[:, :, None] - sites[:, None, :tpl.size], axis=-1).min(axis=2)
    assert gap.max() < 1e-3


def test_fcc_site_scores_nine_with_the_hcp_template():
    # 9 of the cuboctahedron's vertices are anticuboctahedron vertices; the other 3 are turned by
    # 60° about the stacking normal: 1/√3 nearest-neighbour distances off, beyond d_max = 1/2.
    rng = np.random.default_rng(4)
    fits = fit_templates(_sites(template("fcc").vertices, 40, rng), ("fcc", "hcp"))
    assert np.allclose(fits["hcp"].order, 9.0, atol=1e-3)
    fits = fit_templates(_sites(template("hcp").vertices, 40, rng), ("fcc", "hcp"))
    assert np.allclose(fits["fcc"].order, 9.0, atol=1e-3)
    assert np.allclose(fits["hcp"].order, 12.0, atol=1e-3)


def test_order_parameter_follows_eq_2_1_for_a_known_displacement():
    # move one neighbour of a perfect fcc site by 0.25 nearest-neighbour distances: it keeps
    # 1 − 0.25 / 0.5 = 0.5 of its credit (the best rotation barely moves for one of twelve)
    rng = np.random.default_rng(5)
    v = template("fcc").vertices.copy()
    v[3] = v[3] + 0.25 * np.cross(v[3], [0.0, 0.0, 1.0]) / np.linalg.norm(np.cross(v[3], [0.0, 0.0, 1.0]))
    fit = fit_templates(_sites(v, 10, rng, nn_A=1.0), ("fcc",))["fcc"]
    assert np.all(fit.order > 11.3) and np.all(fit.order < 11.6)


def test_rejects_short_neighbour_lists():
    with pytest.raises(ValueError, match="shape"):
        fit_templates(np.zeros((4, 8, 3)))
