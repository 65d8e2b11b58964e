"""The shortlist's second stage: candidates re-ranked by how their polar spectra fit the query's."""

import numpy as np
import pytest

from nanofind.library.match import prepared_query, query_window, shortlist
from nanofind.library.prescreen import entry_polar, polar_scores
from nanofind.library.prototypes import builtin_prototypes
from nanofind.library.queries import QueryConditions, render_query


def tilted_query(library, label, *, rotation_deg, mirror, seed, tilt_deg=1.5, thickness_A=60.0):
    index = [library.label(k) for k in range(len(library))].index(label)
    (proto,) = builtin_prototypes([library.prototype[index]], [library.formula[index]])
    conditions = QueryConditions(pixel_size_A=0.1, shape=(320, 320), rotation_deg=rotation_deg, mirror=mirror,
                                 tilt_deg=tilt_deg, tilt_azimuth_deg=65.0, thickness_A=thickness_A,
                                 dose_e_per_A2=1e5)
    return index, render_query(proto.atoms, tuple(int(x) for x in library.uvw[index]), conditions, rng=seed)


def upright_window(query, library):
    coefficients = prepared_query(query, 0.1, library.pixel_size_A)
    return lambda pixel_A, side: query_window(coefficients, pixel_A, side, library.pixel_size_A, 0.0, False, order=1)


def test_an_entrys_polar_spectrum_is_computed_once(mixed_library):
    first = entry_polar(mixed_library, 3)
    assert entry_polar(mixed_library, 3) is first
    assert (3, 0) in mixed_library.polar_cache and first.dtype == np.float32


@pytest.mark.parametrize("label, rotation_deg, mirror, seed", [("fluorite CeO2 [1 1 0]", 123.0, True, 1),
                                                               ("rocksalt MgO [1 0 0]", 20.0, False, 2),
                                                               ("fluorite CeO2 [2 1 1]", 301.5, False, 5)])
def test_the_right_entry_has_the_best_polar_fit(mixed_library, label, rotation_deg, mirror, seed):
    # patterns without a near twin in the library (fcc Au has one: rock salt's Mg sublattice, 3 % larger)
    index, query = tilted_query(mixed_library, label, rotation_deg=rotation_deg, mirror=mirror, seed=seed)
    everything = np.arange(len(mixed_library))
    scores = polar_scores(mixed_library, everything, np.zeros_like(everything), np.full(len(everything), 0.1),
                          upright_window(query, mixed_library))
    assert int(np.argmax(scores)) == index
    assert np.all(scores <= 1.0 + 1e-9)


def test_the_second_stage_keeps_the_first_stages_candidates_only(mixed_library):
    index, query = tilted_query(mixed_library, "fluorite CeO2 [1 1 0]", rotation_deg=40.0, mirror=False, seed=4)
    wide, _, _, _ = shortlist(mixed_library, query, 0.1, 10, prescreen=10)  # the ring profile alone
    narrow, scores, sizes, _ = shortlist(mixed_library, query, 0.1, 4, prescreen=10)
    assert set(narrow) <= set(wide) and len(narrow) == 4
    assert narrow[0] == index
    assert np.all(np.diff(scores) <= 0)  # best first, by the polar fit
    assert np.all(np.abs(sizes / 0.1 - 1) <= 0.045)  # the known pixel size ±4 %, on the profile's grid
