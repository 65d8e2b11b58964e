import csv
import json
import math

import numpy as np
import pytest

from nanofind.analyze.measure import PARTICLE_COLUMNS, measure_particles
from nanofind.analyze.outputs import CSV_COLUMNS, write_particles_csv
from nanofind.analyze.table import ParticleTable


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _labels(shape, discs):
    """Label image with disc ``k`` (centre row, column, radius in px) labelled ``k + 1``."""
    labels = np.zeros(shape, np.int32)
    for k, (cy, cx, r) in enumerate(discs):
        labels[_disc(shape, (cy, cx), r)] = k + 1
    return labels


@pytest.fixture
def measured():
    """Two images' tables: one with a pixel size, image and probability; one with none of them."""
    a = _labels((120, 160), [(40, 50, 15), (80, 120, 22), (60, 3, 10)])
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, a.shape).astype(np.float32)
    prob = np.where(a > 0, 0.9, 0.1).astype(np.float32)
    b = _labels((100, 100), [(50, 50, 30)])
    return (measure_particles(a, image, prob, pixel_size_A=0.5), a), (measure_particles(b), b)


def test_measured_table_has_typed_columns_and_known_values(measured):
    (table, labels), (no_pixel, _) = measured
    assert table.columns == PARTICLE_COLUMNS and len(table) == 3
    assert table["particle_id"].tolist() == [1, 2, 3]
    assert table["area_px"].dtype == np.int64 and table["touches_edge"].dtype == bool
    assert table["area_px"].tolist() == [int((labels == k).sum()) for k in (1, 2, 3)]
    # 0.5 Å pixels: an area of A px is A / 400 nm²
    np.testing.assert_allclose(table["area_nm2"], table["area_px"] / 400, atol=1e-4)
    assert table["touches_edge"].tolist() == [False, False, True]
    np.testing.assert_allclose(table["confidence"], 0.9, atol=1e-4)
    # without a pixel size, image or probability those columns are missing: NaN, None in rows
    assert np.isnan(no_pixel["equivalent_diameter_nm"]).all() and np.isnan(no_pixel["confidence"]).all()
    assert no_pixel[0]["area_nm2"] is None and no_pixel[0]["mean_intensity"] is None
    with pytest.raises(ValueError):  # columns are read-only: a table is shared, never changed in place
        table["area_px"][0] = 1


def test_rows_survive_json_and_come_back_equal(measured):
    (table, _), (no_pixel, _) = measured
    for t in (table, no_pixel):
        rows = json.loads(json.dumps(t.rows()))  # as a resume record is written and read back
        assert rows == t.rows()
        back = ParticleTable.from_rows(rows)
        assert back == t and back.dtypes == t.dtypes
    assert ParticleTable.from_rows([], columns=PARTICLE_COLUMNS) == ParticleTable.empty()


def test_concat_keeps_rows_and_fills_missing_columns(measured):
    (a, _), (b, _) = measured
    a = a.with_columns(file="a.mrc", frame=None, first=True).with_columns(defect_class=["twin", "none", "none"])
    b = b.with_columns(file="b.tif", frame=3, first=True)
    both = ParticleTable.concat([a, b])
    assert len(both) == 4 and both.columns == ("file", "frame") + PARTICLE_COLUMNS + ("defect_class",)
    assert both["file"].tolist() == ["a.mrc"] * 3 + ["b.tif"]
    assert both["frame"].tolist() == [None, None, None, 3]
    assert both["defect_class"].tolist() == ["twin", "none", "none", None]  # b had no such column
    assert both["area_px"].tolist() == a["area_px"].tolist() + b["area_px"].tolist()
    assert both["area_px"].dtype == np.int64
    # an int column that one table lacks cannot hold the gap as an int: its values stay, the gap is None
    gappy = ParticleTable.concat([a.with_columns(column_count=[5, 6, 7]), b])
    assert gappy["column_count"].tolist() == [5, 6, 7, None]
    assert len(ParticleTable.concat([])) == 0 and ParticleTable.concat([]).columns == PARTICLE_COLUMNS


def test_with_columns_select_and_add_column(measured):
    (table, _), _ = measured
    more = table.add_column("defect_probability", [0.25, 0.5, 1.0], "float32")
    assert "defect_probability" not in table and more["defect_probability"].dtype == np.float32
    assert more.columns[-1] == "defect_probability"
    replaced = more.with_columns(area_px=[1, 2, 3])  # a replaced column keeps its place
    assert replaced.columns == more.columns and replaced["area_px"].tolist() == [1, 2, 3]
    big = table.select(table["area_px"] > 500)
    assert big["particle_id"].tolist() == [1, 2]  # discs of radius 15 and 22 px; the third, r = 10, is cut
    assert table.select([2, 0])["particle_id"].tolist() == [3, 1]
    with pytest.raises(ValueError):
        table.with_columns(too_short=[1, 2])
    with pytest.raises(KeyError, match="no column 'diameter'"):
        table["diameter"]


def test_extra_columns_reach_the_csv(measured, tmp_path):
    (a, labels), (b, _) = measured
    a = a.with_columns(file="a.mrc", frame=None, defect_class=["fault", "no_fault", "misoriented"],
                       defect_probability=[0.8, 0.1, 0.55], column_count=[3, 4, 5], first=False)
    both = ParticleTable.concat([a, b.with_columns(file="b.tif", frame=2)])
    path = write_particles_csv(both, tmp_path / "particles.csv")
    with open(path, newline="") as fh:
        header = next(csv.reader(fh))
    assert header == list(CSV_COLUMNS) + ["column_count"]  # defect columns are standard; later ones follow
    assert header[-8:-1] == ["defect_class", "defect_probability", "p_fault", "p_no_fault", "p_misoriented",
                             "p_agglomerate", "p_empty"]
    rows = list(csv.DictReader(open(path, newline="")))
    assert [r["defect_class"] for r in rows] == ["fault", "no_fault", "misoriented", ""]
    assert [r["frame"] for r in rows] == ["", "", "", "2"]
    assert [int(r["area_px"]) for r in rows[:3]] == [int((labels == k).sum()) for k in (1, 2, 3)]
    assert rows[3]["equivalent_diameter_nm"] == "" and float(rows[3]["equivalent_diameter_px"]) == pytest.approx(
        2 * math.sqrt(int(_disc((100, 100), (50, 50), 30).sum()) / math.pi), abs=1e-3)
    assert rows[2]["touches_edge"] == "True" and rows[0]["touches_edge"] == "False"
    # list-of-dict rows (a resume record) write the same file
    again = write_particles_csv(both.rows(), tmp_path / "again.csv")
    assert again.read_bytes() == path.read_bytes()


def test_hand_made_rows_keep_their_values():
    # a float where the measured table has an int is kept, not cut to an int
    table = ParticleTable.from_rows([{"particle_id": 1, "area_px": 10.5}, {"particle_id": 2, "area_px": 12}])
    assert table["area_px"].tolist() == [10.5, 12.0] and table["particle_id"].dtype == np.int64
    with pytest.raises(ValueError):
        ParticleTable({"a": [1, 2], "b": [1, 2, 3]})
