import json
import os
import re
import shutil
import signal
import subprocess
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanofind._version import __version__
from nanofind.analyze.measure import measure_particles, summarise
from nanofind.analyze.outputs import COLOURS, write_histogram, write_overlay
from nanofind.analyze.report import MAX_TABLE_ROWS, write_report
from nanofind.analyze.table import ParticleTable
from nanofind.learn.card import ModelCard

FAILED_FILE = "broken_scan_0042.tif"
FAILED_ERROR = "unsupported TIFF compression <LZW-9> & no pixel size"


def _scene(shape, discs, seed):
    """Label image of discs (row, column, radius px; label k + 1), a micrograph with them dark, a probability."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    labels = np.zeros(shape, np.int32)
    for k, (cy, cx, r) in enumerate(discs):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k + 1
    rng = np.random.default_rng(seed)
    image = (np.where(labels > 0, 80.0, 150.0) + rng.normal(0, 8, shape)).astype(np.float32)
    probability = np.where(labels > 0, 0.95, 0.05).astype(np.float32)
    return labels, image, probability


def _image(tmp_path, name, frame, labels, image, table, pixel_A):
    overlay = write_overlay(image, labels, table, tmp_path / f"{Path(name).stem}_overlay.png")
    s = summarise(table, labels)
    return {"file": name, "frame": frame, "overlay_png": str(overlay), "n_particles": s["count"],
            "coverage": s["coverage"], "pixel_size_A": pixel_A,
            "mean_diameter_nm": s.get("diameter_mean") if s["unit"] == "nm" else None,
            "mean_diameter_px": float(np.mean(table["equivalent_diameter_px"])), "seconds": 1.3}


def _inputs(tmp_path: Path):
    """What the pipeline hands the report for two images: one with a pixel size (0.5 Å) and a particle cut
    by the edge, one frame of a stack without pixel size or probability (missing nm and confidence cells)."""
    a_labels, a_image, a_prob = _scene((128, 160), [(40, 50, 18), (80, 150, 20)], 0)
    b_labels, b_image, _ = _scene((128, 128), [(64, 64, 25)], 1)
    a = measure_particles(a_labels, a_image, a_prob, pixel_size_A=0.5)
    b = measure_particles(b_labels, b_image)
    images = [_image(tmp_path, "grid_a.mrc", None, a_labels, a_image, a, 0.5),
              _image(tmp_path, "stack_b.tif", 3, b_labels, b_image, b, None)]
    particles = ParticleTable.concat([a.with_columns(file="grid_a.mrc", frame=None, first=True),
                                      b.with_columns(file="stack_b.tif", frame=3, first=True)])
    batch = summarise(particles)
    summary = {"files": 3, "images": 2, "particles": len(particles),
               "failed": [{"file": FAILED_FILE, "error": FAILED_ERROR}], "pixel_size_known": False,
               "size_distribution": {k.removeprefix("diameter_"): v for k, v in batch.items()
                                     if k.startswith("diameter") or k == "unit"},
               "coverage_mean": float(np.mean([i["coverage"] for i in images]))}
    card = {"format": "nanofind-model/1", "architecture": "unet", "threshold": 0.5, "pixel_size_A": 0.5,
            "pixel_size_range_A": [0.25, 0.7], "normalisation": {"median_filter_px": 3, "centre": "median"},
            "metrics": {"test": {"real_held_out": {"images": 4, "dice": 0.98375, "iou": 0.96802}}}}
    settings = {"model": "default", "device": "cpu", "min_area_nm2": 1.0, "split": True, "tile_px": [512, 512]}
    histogram = write_histogram(particles, tmp_path / "hist.png")
    return dict(images=images, particles=particles, summary=summary, card=card, settings=settings,
                histogram_png=histogram)


def _table_html(html: str) -> str:
    table = html[html.index('id="particle-table"'):]
    return table[:table.index("</table>")]


def _cells(row_html: str) -> list[str]:
    return [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row_html)]


def test_report_content(tmp_path):
    inputs = _inputs(tmp_path)
    particles = inputs["particles"]
    out = write_report(tmp_path / "out" / "report.html", **inputs)
    assert out == tmp_path / "out" / "report.html"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temporary file left behind
    html = out.read_text(encoding="utf-8")

    assert "nanofind particle report" in html and __version__ in html
    assert "Files that failed" in html and FAILED_FILE in html
    assert "unsupported TIFF compression &lt;LZW-9&gt; &amp; no pixel size" in html  # escaped
    assert "<LZW-9>" not in html
    assert "Sizes in pixels" in html and "1 of 2 images" in html

    # one row per particle and every column of the table, in its order
    table = _table_html(html)
    assert re.findall(r"<th>(.*?)</th>", table) == list(particles.columns)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert len(rows) == len(particles) == 3
    cells = [dict(zip(particles.columns, _cells(r), strict=True)) for r in rows]
    assert [c["file"] for c in cells] == ["grid_a.mrc", "grid_a.mrc", "stack_b.tif"]
    assert [c["frame"] for c in cells] == ["", "", "3"]
    assert [int(c["area_px"]) for c in cells] == particles["area_px"].tolist()
    # the disc at column 150 of a 160 px wide image is cut by the edge; the stack frame has no nm sizes
    assert [c["touches_edge"] for c in cells] == ["no", "yes", "no"]
    assert cells[2]["equivalent_diameter_nm"] == "" and cells[2]["confidence"] == ""
    assert float(cells[0]["equivalent_diameter_nm"]) == pytest.approx(2 * 18 * 0.05, rel=0.02)
    # numbers carry their exact value for sorting
    assert f'data-v="{float(particles["area_px"][0])!r}"' in rows[0]

    assert html.count("data:image/png;base64,") == 3  # two overlays + histogram
    assert "grid_a.mrc" in html and "stack_b.tif, frame 3" in html
    assert "unet" in html and "0.98375" in html and "real_held_out" in html and "<details" in html
    assert "min_area_nm2" in html and "tile_px" in html

    # self-contained: nothing fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html, re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert not re.search(r"<script[^>]*\bsrc\b", html, re.I)


def test_extra_columns_reach_the_report(tmp_path):
    inputs = _inputs(tmp_path)
    inputs["particles"] = inputs["particles"].with_columns(
        defect_class=["twin", "<none>", "stacking fault"], defect_probability=[0.875, 0.0625, 0.5])
    html = write_report(tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    table = _table_html(html)
    assert re.findall(r"<th>(.*?)</th>", table)[-2:] == ["defect_class", "defect_probability"]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert [_cells(r)[-2:] for r in rows] == [["twin", "0.875"], ["<none>", "0.0625"], ["stacking fault", "0.5"]]
    assert "&lt;none&gt;" in table  # text from a later stage is escaped too


def test_report_truncates_long_tables(tmp_path):
    inputs = _inputs(tmp_path)
    n = MAX_TABLE_ROWS + 123
    inputs["particles"] = inputs["particles"].select(np.arange(n) % 3)  # the measured rows, over and over
    html = write_report(tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    assert _table_html(html).count("<tr>") == MAX_TABLE_ROWS + 1
    assert f"first {MAX_TABLE_ROWS} of {n}" in html and "123 rows are omitted" in html


def test_report_without_card_histogram_or_particles(tmp_path):
    inputs = _inputs(tmp_path)
    inputs.update(particles=ParticleTable.empty(), card=None, histogram_png=None,
                  summary={"files": 2, "images": 2, "particles": 0, "failed": [], "pixel_size_known": True,
                           "size_distribution": {"mean": None, "median": None, "std": None, "min": None,
                                                 "max": None, "unit": "nm"}, "coverage_mean": 0.0})
    for image in inputs["images"]:
        image["pixel_size_A"] = 0.5
    html = write_report(tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    assert "Files that failed" not in html and "Sizes in pixels" not in html
    assert "No particles were found" in html and "No model card" in html
    assert 'id="particle-table"' not in html
    assert html.count("data:image/png;base64,") == 2


def test_report_takes_rows_and_a_card_object(tmp_path):
    # rows read back from a resume record (dicts, None for missing) and a ModelCard object
    inputs = _inputs(tmp_path)
    table = inputs["particles"]

    card = ModelCard.from_record({"task": "segmentation", "architecture": "tiny-unet", "threshold": 0.375,
                                  "pixel_size_A": None, "normalisation": {"median_filter_px": 3},
                                  "metrics": {"test": {"dice": 0.91}}})

    from_table = write_report(tmp_path / "a.html", **inputs).read_text(encoding="utf-8")
    inputs.update(particles=json.loads(json.dumps(table.rows())), card=card)
    from_rows = write_report(tmp_path / "b.html", **inputs).read_text(encoding="utf-8")
    assert _table_html(from_rows) == _table_html(from_table)
    assert "Model card: tiny-unet, threshold 0.375" in from_rows and "0.91" in from_rows


def test_report_json_values_are_plain(tmp_path):
    # NumPy scalars in the summary and settings (as they come out of measurements) must not break the page
    inputs = _inputs(tmp_path)
    inputs["summary"]["coverage_mean"] = np.float64(0.057)
    inputs["summary"]["particles"] = np.int64(3)
    inputs["settings"]["threshold"] = np.float32(0.5)
    html = write_report(tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    start = html.index("<pre>", html.index("Full summary")) + len("<pre>")
    summary = json.loads(unescape(html[start:html.index("</pre>", start)]))
    assert summary["coverage_mean"] == pytest.approx(0.057) and summary["particles"] == 3
    assert re.search(r"<th>threshold</th><td>0\.5</td>", html)


def _chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None:
        pytest.skip("chromium is not installed (needed to render the HTML report; `make test` installs it)")
    return exe


def _run_chromium(exe: str, tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{name}"
    profile.mkdir()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    # its own process group, all killed on timeout: chromium's helper processes keep the output pipes
    # open, so killing chromium alone could leave the read of its output waiting for ever
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            try:
                out, err = process.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # a helper outside the group still holds a pipe
                out, err = "", ""
            err += "\n(chromium ran past 60 s and was killed)"
    return subprocess.CompletedProcess(cmd, process.returncode, out, err)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    exe = _chromium()
    report = write_report(tmp_path / "report.html", **_inputs(tmp_path))
    url = report.resolve().as_uri()

    shot = tmp_path / "shot.png"
    result = _run_chromium(exe, tmp_path, "shot", f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert shot.is_file(), f"chromium wrote no screenshot (rc {result.returncode}):\n{result.stderr[-3000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape == (2000, 1280, 3)
    assert pixels.std() > 30  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # text, cards, micrographs: many colours
    # the overlays' outline colour is on screen, so the embedded images loaded (the page's own styles lack it)
    outline = np.abs(pixels - np.array(COLOURS["particle"])).max(axis=2) < 25
    assert outline.sum() > 100, f"only {outline.sum()} outline pixels: the embedded overlays did not render"

    result = _run_chromium(exe, tmp_path, "dom", "--dump-dom", url)
    assert result.returncode == 0, result.stderr[-3000:]
    dom = result.stdout
    assert dom.count("<img") == 3 and dom.count('src="data:image/png;base64,') == 3
    assert 'id="particle-table"' in dom and "<tbody>" in dom and dom.count("<th>equivalent_diameter_px</th>") == 1
    assert FAILED_FILE in dom and "nanofind particle report" in dom
