"""Polyhedral template matching with the order parameter of seed 004, Eq. 2.1, vectorised.

For a site k with neighbour vectors v_i and a template of ideal vectors p_j (scaled to the site's
own mean neighbour distance), the order parameter is

    s_k = Σ_j max(1 − min_i |v_i − m p_j| / d_max, 0),

with m the rotation that fits the template best and d_max half the nearest-neighbour distance.
A perfect site scores the number of template vertices (12; 14 for bcc).

The seed fits m by iterative closest point from 1026 starting orientations. Here the starting
orientations come from the site itself, which makes a site cost a few microseconds:

- fcc: the nearest neighbour and two neighbours at 60° from it and from each other form a
  right-handed triangle, matched to the fcc template's one orbit of such triangles;
- hcp: from the fcc fit (:func:`~nanofind.structure.templates.hcp_within_fcc`);
- sites that neither fits well (below :data:`CLOSE_PACKED_ORDER`): the nearest neighbour and the
  one at the template's pair angle from it are matched to one vertex pair per symmetry orbit
  (fcc 2, hcp 8, icosahedral 1, five-fold 5, bcc 1), and every template is fitted.

The best start is refined by one closest-point (Kabsch) step, kept when it scores higher.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np

from nanofind.structure.templates import TEMPLATE_NAMES, frame_rotation, hcp_within_fcc, template

#: Sites fitted per block (fastest measured from 512 to 4096; temporary arrays ~10 MB).
_BLOCK_SITES = 4096
#: Newton steps of the polar decomposition (quadratic convergence from a good fit).
_POLAR_STEPS = 4
#: An hcp fit starting this far below the site's fcc order parameter is not refined: it cannot
#: change the site's class, and refining raises it by 0.03–0.08 on average (at 0.05–0.1 Å rms
#: thermal noise), so the value kept is a close lower bound.
UNREFINED_BELOW_RIVAL = 2.0
#: Sites scoring at least this (of 12) with fcc or hcp are not fitted with the other templates.
CLOSE_PACKED_ORDER = 9.0


class TemplateFit(NamedTuple):
    """Fit of one template at many sites."""

    order: np.ndarray  #: (n,) Eq. 2.1 order parameter, 0 … template size; NaN where not fitted
    rotation: np.ndarray  #: (n, 3, 3) rotation taking template vectors to the site's frame


def identities(n: int) -> np.ndarray:
    """N identity rotations, float32 (n, 3, 3)."""
    out = np.zeros((n, 3, 3), dtype=np.float32)
    out[:, [0, 1, 2], [0, 1, 2]] = 1
    return out


@cache
def _vertices32(name: str) -> np.ndarray:
    return template(name).vertices.astype(np.float32)


def _equal_lengths(name: str) -> bool:
    lengths = np.linalg.norm(template(name).vertices, axis=1)
    return bool(np.ptp(lengths) < 1e-9)


#: Dot products are shifted by this before their bits are packed (|dot| stays far below it).
_DOT_OFFSET = 8.0


def _largest_dot(vertices: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and value of the largest of ``vertices @ w`` for every row w of ``flat`` (float32).

    numpy's argmax along a short axis costs ~50 ns a row; instead the vertex index is packed into
    the four lowest mantissa bits of each (shifted, positive) dot product, whose float32 bits
    then sort like integers, and one elementwise maximum over the vertices finds both. The
    value loses those bits (an error below 2e-5); callers needing exact distances recompute them.
    """
    dots = vertices @ flat.T  # (size, rows), one contiguous row per vertex
    np.clip(dots, 1 - _DOT_OFFSET, _DOT_OFFSET - 1, out=dots)
    dots += _DOT_OFFSET
    bits = dots.view(np.int32)
    bits &= ~np.int32(15)
    bits |= np.arange(len(vertices), dtype=np.int32)[:, None]
    best = bits.max(axis=0)
    top = (best & ~np.int32(15)).view(np.float32) - _DOT_OFFSET
    return (best & 15).astype(np.intp), top


def _credits(neighbours: np.ndarray, rotations: np.ndarray, name: str):
    """Eq. 2.1 credits of each neighbour for rotated templates.

    ``neighbours`` (n, m, 3) are in units of the site's nearest-neighbour distance; ``rotations``
    (n, c, 3, 3) take template vectors to the site's frame. Each neighbour is assigned to its
    nearest template vertex. Template vertices are at least one neighbour distance apart, so a
    neighbour within d_max = ½ of a vertex is always assigned to that vertex: taking, per vertex,
    the best of its assigned neighbours gives exactly Eq. 2.1's minimum over all neighbours.

    Returns the order parameter (n, c), the assigned vertex (n, c, m) and credit (n, c, m) of
    every neighbour, and the credit of every vertex (n, c, size).
    """
    n, c = rotations.shape[:2]
    m = neighbours.shape[1]
    vertices = _vertices32(name)
    size = len(vertices)
    w = np.matmul(neighbours[:, None], rotations)  # Rᵀ v: neighbours in each template's frame, (n, c, m, 3)
    flat = w.reshape(-1, 3)
    if _equal_lengths(name):
        nearest, _ = _largest_dot(vertices, flat)
    else:
        nearest = np.argmin((vertices**2).sum(axis=1) - 2 * (flat @ vertices.T), axis=1)
    diff = flat - vertices[nearest]  # the exact distance to the chosen vertex
    d2 = (diff[:, 0] ** 2 + diff[:, 1] ** 2 + diff[:, 2] ** 2).reshape(n, c, m)
    nearest = nearest.reshape(n, c, m)
    credit = np.clip(1 - 2 * np.sqrt(np.maximum(d2, 0)), 0, None)  # d_max = ½ nearest-neighbour distance
    best = np.zeros(n * c * size, dtype=credit.dtype)
    slots = (np.arange(n * c)[:, None] * size + nearest.reshape(n * c, m)).ravel()
    np.maximum.at(best, slots, credit.ravel())
    per_vertex = best.reshape(n, c, size)
    order = best.reshape(n * c, size) @ np.ones(size, dtype=best.dtype)
    return order.reshape(n, c), nearest, credit, per_vertex


def _kabsch(template_vectors: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rotations R with R p_i ≈ t_i in the weighted least-squares sense; p, t: (n, m, 3).

    R is the orthogonal polar factor of M = Σ w t pᵀ, found by Newton's iteration
    X ← (X + X⁻ᵀ)/2, which needs only cross products of 3-vectors. Sites whose M is
    singular or a reflection get NaN (the caller keeps their starting rotation).
    """
    wt = weights[..., None] * targets
    m = np.matmul(np.swapaxes(wt, 1, 2), template_vectors)  # (n, 3, 3) = Σ w t pᵀ
    m /= np.sqrt((m * m).reshape(len(m), 9) @ np.ones(9, dtype=m.dtype) / 3).clip(1e-12)[:, None, None]
    x = [[m[:, i, j] for j in range(3)] for i in range(3)]
    # a singular site turns inf and then NaN on later steps; it is marked bad below, so no warnings
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(_POLAR_STEPS):
            cof = [[x[(i + 1) % 3][(j + 1) % 3] * x[(i + 2) % 3][(j + 2) % 3]
                    - x[(i + 1) % 3][(j + 2) % 3] * x[(i + 2) % 3][(j + 1) % 3] for j in range(3)] for i in range(3)]
            det = x[0][0] * cof[0][0] + x[0][1] * cof[0][1] + x[0][2] * cof[0][2]
            inv_det = 1 / det
            x = [[0.5 * (x[i][j] + cof[i][j] * inv_det) for j in range(3)] for i in range(3)]
    rotation = np.stack([np.stack(row, axis=-1) for row in x], axis=1)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(rotation).all(axis=(1, 2)) | ~(det > 0)
    rotation[bad] = np.nan
    return rotation


def _fit_from_starts(v: np.ndarray, starts: np.ndarray, name: str,
                     rival: np.ndarray | None = None) -> tuple[TemplateFit, np.ndarray]:
    """Best of the starting rotations (n, c, 3, 3), refined by one closest-point step.

    With ``rival`` (another template's order parameter at the same sites), sites where this
    template starts :data:`UNREFINED_BELOW_RIVAL` or more below it are not refined.
    Returns the fit and the credit of each template vertex under it (n, size).
    """
    order, nearest, credit, per_vertex = _credits(v, starts, name)
    best = np.argmax(order, axis=1)
    rows = np.arange(len(v))
    rotation = starts[rows, best]
    order = order[rows, best]
    per_vertex = per_vertex[rows, best]
    # a site already matching every vertex within 0.2 % of d_max needs no refinement
    needed = order < 0.998 * template(name).size
    if rival is not None:
        needed &= order > rival - UNREFINED_BELOW_RIVAL
    todo = np.flatnonzero(needed)
    if not len(todo):
        return TemplateFit(order, rotation), per_vertex
    sub = v[todo]
    refined = _kabsch(_vertices32(name)[nearest[todo, best[todo]]], sub, credit[todo, best[todo]] + 1e-6)
    refined = refined.astype(np.float32)
    finite = np.isfinite(refined).all(axis=(1, 2))
    refined[~finite] = rotation[todo][~finite]
    new_order, _, _, new_per_vertex = _credits(sub, refined[:, None], name)
    better = finite & (new_order[:, 0] > order[todo])
    won = todo[better]
    rotation[won] = refined[better]
    order[won] = new_order[better, 0]
    per_vertex[won] = new_per_vertex[better, 0]
    return TemplateFit(order, rotation), per_vertex


def _triangle_corner(v: np.ndarray) -> np.ndarray:
    """Second corner b of each site's right-handed triangle (0, b, c) of neighbours at 60°.

    Corner 0 is the nearest neighbour, b the neighbour closest to 60° from it, and c the one
    closest to 60° from both (in close packing the only such neighbour: every edge of the
    coordination polyhedron borders exactly one triangle).
    """
    unit = v[:, :12] / np.sqrt(v[:, :12, 0] ** 2 + v[:, :12, 1] ** 2 + v[:, :12, 2] ** 2)[..., None]
    rows = np.arange(len(v))
    off_first = np.abs(np.einsum("nmk,nk->nm", unit, unit[:, 0]) - 0.5)
    off_first[:, 0] = np.inf
    b = np.argmin(off_first, axis=1)
    off_both = np.maximum(off_first, np.abs(np.einsum("nmk,nk->nm", unit, unit[rows, b]) - 0.5))
    off_both[rows, b] = np.inf
    c = np.argmin(off_both, axis=1)
    p, q, r = v[:, 0], v[rows, b], v[rows, c]
    det = (p[:, 0] * (q[:, 1] * r[:, 2] - q[:, 2] * r[:, 1]) - p[:, 1] * (q[:, 0] * r[:, 2] - q[:, 2] * r[:, 0])
           + p[:, 2] * (q[:, 0] * r[:, 1] - q[:, 1] * r[:, 0]))
    return np.where(det > 0, b, c)


def _starts(first: np.ndarray, second: np.ndarray, pairs: np.ndarray, name: str) -> np.ndarray:
    p = _vertices32(name)
    site_frames = frame_rotation(first, second)
    template_frames = frame_rotation(p[pairs[:, 0]], p[pairs[:, 1]])
    return np.matmul(site_frames[:, None], np.swapaxes(template_frames, 1, 2)[None]).astype(np.float32)


def _fit_close_packed(v: np.ndarray) -> tuple[TemplateFit, TemplateFit]:
    """Fit fcc from each site's triangle, then hcp from the fcc fit.

    An hcp site matches the fcc template on its basal hexagon and one triangle, so the fcc
    vertices left without credit say how the hcp template lies
    (:func:`~nanofind.structure.templates.hcp_within_fcc`).
    """
    rows = np.arange(len(v))
    starts = _starts(v[:, 0], v[rows, _triangle_corner(v)], template("fcc").triangles[:, :2], "fcc")
    fcc, per_vertex = _fit_from_starts(v[:, :12], starts, "fcc")
    q, unmatched = hcp_within_fcc()
    way = np.argmin(per_vertex[:, unmatched].sum(-1), axis=1)
    hcp_starts = np.matmul(fcc.rotation, q[way].astype(np.float32))[:, None]
    hcp, _ = _fit_from_starts(v[:, :12], hcp_starts, "hcp", rival=fcc.order)
    return fcc, hcp


def _normalised(vectors: np.ndarray, count: int, mean_length: float = 1.0) -> np.ndarray:
    """The first ``count`` vectors of each site in units of the site's own neighbour distance."""
    v = vectors[:, :count]
    scale = np.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2 + v[..., 2] ** 2).mean(axis=1) / mean_length
    return (v / scale[:, None, None]).astype(np.float32)


def _fit_by_pairs(vectors: np.ndarray, name: str) -> TemplateFit:
    """Fit one template from vertex-pair frames (one per symmetry orbit): slower, for any site."""
    tpl = template(name)
    vt = _normalised(vectors, tpl.size, tpl.mean_length)
    unit = vt / np.linalg.norm(vt, axis=-1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip(np.einsum("nmk,nk->nm", unit[:, 1:], unit[:, 0]), -1, 1)))
    pick = 1 + np.argmin(np.abs(angle - tpl.pair_angle_deg), axis=1)
    starts = _starts(vt[:, 0], vt[np.arange(len(vt)), pick], tpl.frames, name)
    return _fit_from_starts(vt, starts, name)[0]


def fit_templates(vectors: np.ndarray, names: tuple[str, ...] = TEMPLATE_NAMES,
                  sites: np.ndarray | None = None) -> dict[str, TemplateFit]:
    """Fit the templates ``names`` at every site (Eq. 2.1 of seed 004).

    Parameters
    ----------
    vectors : ndarray of shape (n, k, 3)
        Each site's neighbour vectors, Å, sorted by length; k ≥ 12 (14 to fit bcc).
    names : tuple of str
        Templates to fit, from :data:`nanofind.structure.templates.TEMPLATE_NAMES`.
    sites : ndarray of int, optional
        Fit only these rows of ``vectors`` (the others get NaN and the identity); saves copying
        the rows out of a large model's array and the results back in.

    Returns
    -------
    dict of str to TemplateFit
        Per template and row of ``vectors``: order parameter (NaN where the template was not
        fitted: on close-packed sites only fcc and hcp are) and the fitted rotation.

    Notes
    -----
    One thread: the work is bound by memory traffic, and two processes fitting side by side on
    a 2-core machine were measured at half their single speed each.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 3 or vectors.shape[2] != 3 or vectors.shape[1] < 12:
        raise ValueError(f"vectors must have shape (n, >= 12, 3), got {vectors.shape}")
    for name in names:
        template(name)
    n = len(vectors)
    sites = np.arange(n) if sites is None else np.asarray(sites, dtype=np.intp)
    out = {name: TemplateFit(np.full(n, np.nan), identities(n)) for name in names}
    for start in range(0, len(sites), _BLOCK_SITES):
        block = sites[start:start + _BLOCK_SITES]
        for name, fit in zip(("fcc", "hcp"), _fit_close_packed(_normalised(vectors[block], 12)), strict=True):
            if name in out:
                out[name].order[block] = fit.order
                out[name].rotation[block] = fit.rotation
    # Sites that are clearly close-packed are done: five-fold, icosahedral and bcc sites score
    # below 8 with both close-packed templates. The others get every template.
    close = np.fmax(out["fcc"].order if "fcc" in out else np.nan, out["hcp"].order if "hcp" in out else np.nan)
    other = sites[~(close[sites] >= CLOSE_PACKED_ORDER)]
    for start in range(0, len(other), _BLOCK_SITES):
        chunk = other[start:start + _BLOCK_SITES]
        for name in names:
            if vectors.shape[1] < template(name).size:
                continue
            fit = _fit_by_pairs(vectors[chunk], name)
            keep = ~(out[name].order[chunk] >= fit.order)  # fcc and hcp: the better of two fits
            out[name].order[chunk[keep]] = fit.order[keep]
            out[name].rotation[chunk[keep]] = fit.rotation[keep]
    return out
