import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nanofind._version import __version__
from nanofind.analyze.report import MAX_TABLE_ROWS, write_report

RED = (255, 0, 0)
FAILED_FILE = "broken_scan_0042.tif"
FAILED_ERROR = "unsupported TIFF compression <LZW-9> & no pixel size"


def _overlay(path: Path, seed: int) -> Path:
    """Grey noisy 'micrograph' with bright red particle outlines and numbers, as the real overlays have."""
    rng = np.random.default_rng(seed)
    grey = np.clip(rng.normal(130, 25, (128, 128)), 0, 255).astype(np.uint8)
    image = Image.fromarray(grey).convert("RGB")
    draw = ImageDraw.Draw(image)
    for k, (cx, cy, r) in enumerate([(40, 40, 18), (88, 76, 24)], start=1):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=RED, width=4)
        draw.text((cx - 3, cy - 6), str(k), fill=RED)
    image.save(path)
    return path


def _histogram(path: Path) -> Path:
    image = Image.new("RGB", (320, 200), "white")
    draw = ImageDraw.Draw(image)
    for k, h in enumerate([20, 60, 140, 90, 30]):
        draw.rectangle((20 + 56 * k, 190 - h, 66 + 56 * k, 190), fill=(31, 119, 180))
    image.save(path)
    return path


def _particle(file, frame, pid, d_px, pixel_A, **extra):
    d_nm = None if pixel_A is None else d_px * pixel_A / 10
    row = {"file": file, "frame": frame, "particle_id": pid, "area_px": round(np.pi * d_px**2 / 4, 1),
           "area_nm2": None if d_nm is None else np.pi * d_nm**2 / 4, "equivalent_diameter_px": d_px,
           "equivalent_diameter_nm": d_nm, "major_axis_nm": None if d_nm is None else d_nm * 1.1,
           "minor_axis_nm": None if d_nm is None else d_nm * 0.9, "aspect_ratio": 1.22, "orientation_deg": 12.5,
           "circularity": 0.93, "solidity": 0.97, "centroid_x_px": 40.0, "centroid_y_px": 41.5,
           "mean_intensity": 88.2, "std_intensity": 9.1, "confidence": 0.981, "touches_edge": False,
           "agglomerate": False}
    row.update(extra)
    return row


def _inputs(tmp_path: Path, n_rows: int | None = None):
    images = [
        {"file": "grid_a.mrc", "frame": None, "overlay_png": _overlay(tmp_path / "a.png", 0), "n_particles": 2,
         "coverage": 0.083, "pixel_size_A": 0.5, "mean_diameter_nm": 2.1, "mean_diameter_px": 42.0, "seconds": 1.3},
        {"file": "stack_b.tif", "frame": 3, "overlay_png": _overlay(tmp_path / "b.png", 1), "n_particles": 1,
         "coverage": 0.031, "pixel_size_A": None, "mean_diameter_nm": None, "mean_diameter_px": 36.0, "seconds": 0.9},
    ]
    particles = [
        _particle("grid_a.mrc", None, 1, 36.2, 0.5),
        _particle("grid_a.mrc", None, 2, 47.9, 0.5, touches_edge=True, agglomerate=True),
        # a row from an image without pixel size: nm columns None, plus a missing confidence
        _particle("stack_b.tif", 3, 1, 36.0, None, confidence=None),
    ]
    if n_rows is not None:
        particles = [_particle("many.mrc", None, k, 30.0 + k % 7, 0.5) for k in range(1, n_rows + 1)]
    summary = {"files": 3, "images": 2, "particles": len(particles),
               "failed": [{"file": FAILED_FILE, "error": FAILED_ERROR}], "pixel_size_known": False,
               "size_distribution": {"mean": 40.0, "median": 36.2, "std": 5.6, "min": 36.0, "max": 47.9, "unit": "px"},
               "coverage_mean": 0.057}
    card = {"format": "nanofind-model/1", "architecture": "unet", "threshold": 0.5, "pixel_size_A": 0.5,
            "pixel_size_range_A": [0.25, 0.7], "normalisation": {"median_filter_px": 3, "centre": "median"},
            "metrics": {"test": {"real_held_out": {"images": 4, "dice": 0.98375, "iou": 0.96802}}}}
    settings = {"model": "default", "device": "cpu", "min_area_nm2": 1.0, "split": True, "tile_px": [512, 512]}
    return dict(images=images, particles=particles, summary=summary, card=card, settings=settings,
                histogram_png=_histogram(tmp_path / "hist.png"))


def _chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None:
        pytest.fail("chromium is not installed (needed to render the HTML report); run `make test`, which installs "
                    "it, or `apt-get install -y chromium`")
    return exe


def _run_chromium(exe: str, tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{name}"
    profile.mkdir()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_report_content(tmp_path):
    out = write_report(tmp_path / "out" / "report.html", **_inputs(tmp_path))
    assert out == tmp_path / "out" / "report.html"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temporary file left behind
    html = out.read_text(encoding="utf-8")

    assert "nanofind particle report" in html and __version__ in html
    assert "Files that failed" in html and FAILED_FILE in html
    assert "unsupported TIFF compression &lt;LZW-9&gt; &amp; no pixel size" in html  # escaped
    assert "&lt;LZW-9&gt;" in html and "<LZW-9>" not in html
    assert "Sizes in pixels" in html and "1 of 2 images" in html

    # three particle rows, every column, the None cells empty
    table = html[html.index('id="particle-table"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 4  # header + 3 rows
    for column in ("equivalent_diameter_nm", "touches_edge", "agglomerate", "centroid_y_px", "confidence"):
        assert f"<th>{column}</th>" in table
    assert "<td>stack_b.tif</td>" in table and "<td></td>" in table
    assert ">47.9<" in table and ">yes<" in table

    assert html.count("data:image/png;base64,") == 3  # two overlays + histogram
    assert "grid_a.mrc" in html and "stack_b.tif, frame 3" in html
    assert "unet" in html and "0.98375" in html and "real_held_out" in html and "<details" in html
    assert "min_area_nm2" in html and "tile_px" in html

    # self-contained: nothing fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html, re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert not re.search(r"<script[^>]*\bsrc\b", html, re.I)


def test_report_truncates_long_tables(tmp_path):
    inputs = _inputs(tmp_path, n_rows=MAX_TABLE_ROWS + 123)
    html = write_report(tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    table = html[html.index('id="particle-table"'):]
    assert table[:table.index("</table>")].count("<tr>") == MAX_TABLE_ROWS + 1
    assert f"first {MAX_TABLE_ROWS} of {MAX_TABLE_ROWS + 123}" in html and "123 rows are omitted" in html


def test_report_without_card_histogram_or_particles(tmp_path):
    inputs = _inputs(tmp_path)
    inputs.update(particles=[], card=None, histogram_png=None,
                  summary={"files": 2, "images": 2, "particles": 0, "failed": [], "pixel_size_known": True,
                           "size_distribution": {"mean": None, "median": None, "std": None, "min": None,
                                                 "max": None, "unit": "nm"}, "coverage_mean": 0.0})
    for image in inputs["images"]:
        image["pixel_size_A"] = 0.5
    html = write_report(tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    assert "Files that failed" not in html and "Sizes in pixels" not in html
    assert "No particles were found" in html and "No model card" in html
    assert html.count("data:image/png;base64,") == 2


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    exe = _chromium()
    report = write_report(tmp_path / "report.html", **_inputs(tmp_path))
    url = report.resolve().as_uri()

    shot = tmp_path / "shot.png"
    result = _run_chromium(exe, tmp_path, "shot", f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert shot.is_file(), f"chromium wrote no screenshot (rc {result.returncode}):\n{result.stderr[-3000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (2000, 1280, 3)
    assert pixels.std() > 30  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # text, cards, photos: many colours
    # the overlays' red outlines are on screen, so the embedded images loaded (the page itself uses no pure red)
    red = (pixels[..., 0] > 220) & (pixels[..., 1] < 40) & (pixels[..., 2] < 40)
    assert red.sum() > 1000, f"only {red.sum()} red pixels: the embedded overlays did not render"

    result = _run_chromium(exe, tmp_path, "dom", "--dump-dom", url)
    assert result.returncode == 0, result.stderr[-3000:]
    dom = result.stdout
    assert dom.count("<img") == 3 and dom.count('src="data:image/png;base64,') == 3
    assert 'id="particle-table"' in dom and "<tbody>" in dom and dom.count("<th>equivalent_diameter_px</th>") == 1
    assert FAILED_FILE in dom and "nanofind particle report" in dom


def test_report_json_values_are_plain(tmp_path):
    # NumPy scalars in rows, summary and settings (as they come out of measurements) must not break the page
    inputs = _inputs(tmp_path)
    inputs["particles"][0]["area_px"] = np.float32(1029.5)
    inputs["particles"][0]["particle_id"] = np.int64(1)
    inputs["particles"][0]["touches_edge"] = np.bool_(True)
    inputs["summary"]["coverage_mean"] = np.float64(0.057)
    inputs["settings"]["threshold"] = np.float32(0.5)
    html = write_report(tmp_path / "r.html", **inputs).read_text(encoding="utf-8")
    assert 'data-v="1029.5">1029.5<' in html and 'data-v="1">yes<' in html
    start = html.index("<pre>", html.index("Full summary")) + len("<pre>")
    summary = json.loads(unescape(html[start:html.index("</pre>", start)]))
    assert summary["coverage_mean"] == pytest.approx(0.057)
