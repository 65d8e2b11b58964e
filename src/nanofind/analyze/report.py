"""Self-contained HTML report of a ``nanofind analyze`` run.

One file a microscopist can open in any browser or attach to an e-mail: every image is embedded as a
base64 ``data:`` URI, the styling and the small table-sorting script are inline, and nothing is fetched
from the network. The page holds a summary (with the files that failed and a warning when sizes are in
pixels), a gallery of the overlays, the size histogram, the particle table, the segmentation model's
card and the analysis settings.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from html import escape
from pathlib import Path

from nanofind._files import write_text_atomic
from nanofind._version import __version__

#: The particle table on the page is cut to this many rows (the full table lives in the table files).
MAX_TABLE_ROWS = 2000

_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa; --accent: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--ink); background: #fff; }
header { background: #12263f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 24px; font-weight: 600; }
header .meta { color: #c9d6e6; font-size: 13px; margin-top: 4px; }
main { padding: 8px 32px 48px; max-width: 1500px; }
h2 { font-size: 19px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 6px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; }
.card .sub { color: var(--muted); font-size: 12px; }
.alert { border-radius: 8px; padding: 12px 16px; margin: 16px 0; border: 1px solid; }
.alert h2 { border: 0; margin: 0 0 6px; padding: 0; font-size: 17px; }
.alert ul { margin: 4px 0 0; padding-left: 20px; }
.alert.error { background: #fdecea; border-color: #c5221f; color: #7a1410; }
.alert.warn { background: #fff4e0; border-color: #c77c02; color: #6b4200; }
.warn-text { color: #a35f00; font-weight: 600; }
.alert code { background: rgba(0, 0, 0, .06); padding: 0 4px; border-radius: 3px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 16px; }
figure.wide { grid-column: 1 / -1; }
figure { margin: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
figure img { display: block; width: 100%; height: auto; border-radius: 4px; background: #000; cursor: zoom-in; }
figure.wide img { cursor: zoom-out; }
figcaption { font-size: 13px; margin-top: 6px; }
figcaption .file { font-weight: 600; word-break: break-all; }
figcaption .stats { color: var(--muted); }
.missing { padding: 40px 8px; text-align: center; color: var(--muted); border: 1px dashed var(--line); }
img.histogram { max-width: min(100%, 900px); height: auto; border: 1px solid var(--line); border-radius: 8px; }
.note { color: var(--muted); font-size: 13px; }
.tablewrap { overflow: auto; max-height: 640px; border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; font-size: 13px; }
table.data th, table.data td { padding: 4px 8px; border-bottom: 1px solid #eaeef2; white-space: nowrap; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data thead th { position: sticky; top: 0; background: #e9eef4; text-align: left; cursor: pointer;
                      user-select: none; border-bottom: 1px solid var(--line); }
table.data thead th:hover { background: #dbe4ee; }
table.data thead th.asc::after { content: " \\25B2"; font-size: 10px; }
table.data thead th.desc::after { content: " \\25BC"; font-size: 10px; }
table.data tbody tr:nth-child(even) { background: #f9fafb; }
table.kv th { text-align: left; color: var(--muted); font-weight: 500; padding: 3px 16px 3px 0;
              vertical-align: top; white-space: nowrap; }
table.kv td { padding: 3px 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
details { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; margin: 8px 0; }
details > summary { cursor: pointer; font-weight: 600; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow: auto;
      max-height: 520px; font-size: 12px; }
footer { color: var(--muted); font-size: 12px; padding: 16px 32px; border-top: 1px solid var(--line); }
"""

# Click an overlay to widen it to the full page width (and back). Click a column header to sort;
# numeric cells carry their raw value in data-v, empty cells sort last.
_JS = """
document.querySelectorAll("figure img").forEach(function (img) {
  img.addEventListener("click", function () { img.parentElement.classList.toggle("wide"); });
});
document.querySelectorAll("table.data").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("thead th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        if (cell.hasAttribute("data-v")) { return parseFloat(cell.getAttribute("data-v")); }
        return cell.textContent;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), ex = (x === "" || Number.isNaN(x)), ey = (y === "" || Number.isNaN(y));
        if (ex || ey) { return ex === ey ? 0 : (ex ? 1 : -1); }
        var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _plain(value):
    """NumPy scalars to Python scalars (rows may come straight from arrays)."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


def _json_default(value):
    value = _plain(value)
    return value if isinstance(value, bool | int | float) else str(value)


def _is_missing(value) -> bool:
    value = _plain(value)
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _number(value, digits: int = 4) -> str:
    """Compact human-readable number ('' for None/NaN)."""
    value = _plain(value)
    if _is_missing(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.{digits}g}"


def _json(value) -> str:
    return json.dumps(value, indent=1, default=_json_default, ensure_ascii=False)


def _text(value) -> str:
    """Escaped text of any value: numbers formatted, containers as compact JSON."""
    value = _plain(value)
    if isinstance(value, dict | list | tuple):
        return escape(json.dumps(value, default=_json_default, ensure_ascii=False))
    if isinstance(value, bool | int | float) or value is None:
        return escape(_number(value))
    return escape(str(value))


def _png_uri(path: Path | str | None) -> str | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _size(value, unit: str) -> str:
    return "–" if _is_missing(value) else f"{_number(value, 3)} {unit}"


def _range(low, high, unit: str) -> str:
    if _is_missing(low) or _is_missing(high):
        return "–"
    return f"{_number(low, 3)} – {_number(high, 3)} {unit}"


def _card(label: str, value: str, sub: str = "") -> str:
    sub_html = f'<div class="sub">{sub}</div>' if sub else ""
    return f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{value}</div>{sub_html}</div>'


def _kv_table(items) -> str:
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{_text(v)}</td></tr>" for k, v in items)
    return f'<table class="kv">{rows}</table>'


def _header(generated: str) -> str:
    return (f"<header><h1>nanofind particle report</h1>"
            f'<div class="meta">Generated {escape(generated)} · nanofind {escape(__version__)}</div></header>')


def _image_title(image: dict) -> str:
    name, frame = str(image.get("file", "")), image.get("frame")
    return name if frame is None else f"{name}, frame {frame}"


def _alerts(images: list[dict], summary: dict) -> str:
    parts = []
    failed = summary.get("failed") or []
    if failed:
        items = "".join(
            f"<li><code>{escape(str(item.get('file', '?')))}</code>: {escape(str(item.get('error', '')))}</li>"
            for item in failed)
        parts.append(f'<section class="alert error" id="failed"><h2>Files that failed ({len(failed)})</h2>'
                     f"<p>These files could not be analysed and are not in the results below.</p>"
                     f"<ul>{items}</ul></section>")
    warned = [im for im in images if im.get("warnings")]
    if warned:
        items = "".join(
            f"<li><code>{escape(_image_title(im))}</code>: {escape(w)}</li>" for im in warned for w in im["warnings"])
        left_out = (" Their particles are in the table but not in the size statistics and histogram."
                    if summary.get("size_distribution_excludes") else "")
        parts.append(f'<section class="alert warn" id="warnings"><h2>Questionable images ({len(warned)})</h2>'
                     f"<p>These images were analysed, but their results may be unreliable.{left_out}</p>"
                     f"<ul>{items}</ul></section>")
    unknown = [im for im in images if im.get("pixel_size_A") is None]
    unit = (summary.get("size_distribution") or {}).get("unit")
    if unknown or summary.get("pixel_size_known") is False or unit == "px":
        if images and len(unknown) == len(images):
            what = "The pixel size is unknown for every image"
        elif unknown:
            what = f"The pixel size is unknown for {len(unknown)} of {len(images)} images"
        else:
            what = "The pixel size is unknown for some images"
        stats = " The size statistics in the summary are in pixels." if unit == "px" else ""
        parts.append(f'<section class="alert warn" id="pixels"><h2>Sizes in pixels</h2>'
                     f"<p>{escape(what)}: their sizes and areas are reported in <b>pixels (px)</b>, not nm, and the "
                     f"<code>_nm</code> columns are empty.{escape(stats)} Give the pixel size (or use files that "
                     f"record it) to get sizes in nm.</p></section>")
    return "".join(parts)


def _summary(summary: dict) -> str:
    dist = summary.get("size_distribution") or {}
    unit = str(dist.get("unit") or ("nm" if summary.get("pixel_size_known") else "px"))
    failed = summary.get("failed") or []
    coverage = summary.get("coverage_mean")
    mean, std = dist.get("mean"), dist.get("std")
    mean_text = _size(mean, unit)
    if not _is_missing(mean) and not _is_missing(std):
        mean_text = f"{_number(mean, 3)} ± {_number(std, 2)} {unit}"
    cards = [
        _card("Files", _text(summary.get("files"))),
        _card("Images", _text(summary.get("images")), "frames analysed"),
        _card("Particles", _text(summary.get("particles"))),
        _card("Failed", _text(len(failed)), "see the list above" if failed else ""),
        _card("Mean coverage", "–" if _is_missing(coverage) else f"{100 * float(coverage):.1f} %",
              "particle area fraction"),
        _card("Mean diameter", escape(mean_text), "equivalent diameter ± std"),
        _card("Median diameter", escape(_size(dist.get("median"), unit))),
        _card("Range", escape(_range(dist.get("min"), dist.get("max"), unit)), "min – max"),
    ]
    full = f"<details><summary>Full summary (JSON)</summary><pre>{escape(_json(summary))}</pre></details>"
    return f'<section id="summary"><h2>Summary</h2><div class="cards">{"".join(cards)}</div>{full}</section>'


def _gallery(images: list[dict]) -> str:
    if not images:
        return '<section id="images"><h2>Images</h2><p class="note">No images were analysed.</p></section>'
    figures = []
    for k, image in enumerate(images):
        title = _image_title(image)
        uri = _png_uri(image.get("overlay_png"))
        if uri is None:
            picture = f'<div class="missing">overlay not available: {escape(str(image.get("overlay_png")))}</div>'
        else:
            picture = f'<img src="{uri}" alt="{escape(title)} with numbered particle outlines" loading="eager">'
        if not _is_missing(image.get("mean_diameter_nm")):
            size = f"{_number(image['mean_diameter_nm'], 3)} nm"
        elif not _is_missing(image.get("mean_diameter_px")):
            size = f"{_number(image['mean_diameter_px'], 3)} px"
        else:
            size = "–"
        coverage = image.get("coverage")
        pixel = image.get("pixel_size_A")
        n = image.get("n_particles")
        stats = [f"{_text(n)} particle{'' if n == 1 else 's'}",
                 "coverage " + ("–" if _is_missing(coverage) else f"{100 * float(coverage):.1f} %"),
                 f"mean diameter {escape(size)}",
                 "pixel " + ("unknown" if _is_missing(pixel) else f"{_number(pixel, 3)} Å"),
                 "" if _is_missing(image.get("zoom")) or image["zoom"] == 1 else
                 f"segmented at {_number(image['zoom'], 3)}× ({_number(image.get('working_pixel_size_A'), 3)} Å)",
                 f'<span class="warn-text">⚠ {len(image["warnings"])} warning(s), see above</span>'
                 if image.get("warnings") else "",
                 "" if _is_missing(image.get("seconds")) else f"{float(image['seconds']):.1f} s"]
        figures.append(f'<figure id="image-{k}">{picture}<figcaption><div class="file">{escape(title)}</div>'
                       f'<div class="stats">{" · ".join(s for s in stats if s)}</div></figcaption></figure>')
    return (f'<section id="images"><h2>Images ({len(images)})</h2>'
            f'<div class="gallery">{"".join(figures)}</div></section>')


def _histogram(histogram_png: Path | None) -> str:
    uri = _png_uri(histogram_png)
    if uri is None:
        return ""
    return (f'<section id="histogram"><h2>Size distribution</h2>'
            f'<img class="histogram" src="{uri}" alt="histogram of particle equivalent diameters"></section>')


def _particle_table(particles: list[dict]) -> str:
    head = '<section id="particles"><h2>Particles</h2>'
    if not particles:
        return head + '<p class="note">No particles were found.</p></section>'
    columns: list[str] = []
    for row in particles:
        columns.extend(key for key in row if key not in columns)
    shown = particles[:MAX_TABLE_ROWS]
    lines = []
    for row in shown:
        cells = []
        for column in columns:
            value = _plain(row.get(column))
            if isinstance(value, bool):
                cells.append(f'<td class="num" data-v="{int(value)}">{_text(value)}</td>')
            elif isinstance(value, int | float) and not _is_missing(value):
                cells.append(f'<td class="num" data-v="{float(value)!r}">{_text(value)}</td>')
            else:
                cells.append(f"<td>{_text(value)}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    omitted = len(particles) - len(shown)
    note = (f'<p class="note">{len(particles)} particles; click a column header to sort.</p>' if not omitted else
            f'<p class="note"><b>Showing the first {len(shown)} of {len(particles)} particles; {omitted} rows are '
            f"omitted from this page</b> (the full table is in the particle table files). "
            f"Click a column header to sort.</p>")
    header = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    return (f'{head}{note}<div class="tablewrap"><table class="data" id="particle-table"><thead><tr>{header}</tr>'
            f"</thead><tbody>{''.join(lines)}</tbody></table></div></section>")


def _metrics_table(test: dict) -> str:
    """Test metrics: one row per test set when the entries are dicts, else a key/value table."""
    sets = {k: v for k, v in test.items() if isinstance(v, dict)}
    if not sets:
        return _kv_table(test.items())
    keys: list[str] = []
    for values in sets.values():
        keys.extend(k for k, v in values.items() if k not in keys and not isinstance(v, dict | list | str))
    header = "<th>test set</th>" + "".join(f"<th>{escape(k)}</th>" for k in keys)
    rows = []
    for name, values in sets.items():
        cells = "".join(f'<td class="num">{_text(values.get(k))}</td>' for k in keys)
        data = values.get("data")
        label = escape(name) + (f'<div class="note">{escape(str(data))}</div>' if data else "")
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    plain = [(k, v) for k, v in test.items() if k not in sets]
    extra = _kv_table(plain) if plain else ""
    return (f'<div class="tablewrap"><table class="data"><thead><tr>{header}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>{extra}")


def _model_card(card: dict | None) -> str:
    head = '<section id="model"><h2>Segmentation model</h2>'
    if not card:
        return head + '<p class="note">No model card was given (no learned model was used).</p></section>'
    pixel_range = card.get("pixel_size_range_A")
    working = card.get("working_pixel_size_range_A") or pixel_range
    facts = [
        ("architecture", card.get("architecture")),
        ("options", card.get("options") or None),
        ("threshold", card.get("threshold")),
        ("training pixel size (Å)", card.get("pixel_size_A")),
        ("training pixel size range (Å)",
         " – ".join(_number(v, 3) for v in pixel_range) if isinstance(pixel_range, list | tuple) else pixel_range),
        ("segments at pixel sizes (Å; others are resampled)",
         " – ".join(_number(v, 3) for v in working) if isinstance(working, list | tuple) else None),
        ("classes", card.get("classes")),
        ("model made with nanofind", card.get("nanofind_version")),
    ]
    normalisation = card.get("normalisation")
    if isinstance(normalisation, dict):
        facts += [(f"normalisation: {k}", v) for k, v in normalisation.items()]
    elif normalisation is not None:
        facts.append(("normalisation", normalisation))
    facts = [(k, v) for k, v in facts if v is not None]
    test = (card.get("metrics") or {}).get("test") if isinstance(card.get("metrics"), dict) else None
    metrics = (f"<h3>Test metrics</h3>{_metrics_table(test)}" if isinstance(test, dict) and test else
               '<p class="note">The card records no test metrics.</p>')
    return (f"{head}<details open><summary>Model card: {escape(str(card.get('architecture', 'model')))}, "
            f"threshold {_text(card.get('threshold'))}</summary>{_kv_table(facts)}{metrics}"
            f"<details><summary>Full model card (JSON)</summary><pre>{escape(_json(card))}</pre></details>"
            f"</details></section>")


def _settings(settings: dict) -> str:
    body = _kv_table(settings.items()) if settings else '<p class="note">No settings recorded.</p>'
    return f'<section id="settings"><h2>Analysis settings</h2>{body}</section>'


def write_report(path: Path, *, images: list[dict], particles: list[dict], summary: dict, card: dict | None,
                 settings: dict, histogram_png: Path | None = None) -> Path:
    """Write the self-contained HTML report of an analysis run and return its path.

    Parameters
    ----------
    path
        Output ``.html`` file (written atomically: temporary file, then rename).
    images
        One dict per analysed image (frame): ``file``, ``frame``, ``overlay_png`` (PNG on disk),
        ``n_particles``, ``coverage``, ``pixel_size_A``, ``mean_diameter_nm``, ``mean_diameter_px``, ``seconds``.
    particles
        Rows of the particle table (dicts with the same keys); ``None`` renders as an empty cell. At most
        `MAX_TABLE_ROWS` rows are shown and the page says how many were left out.
    summary
        Run summary: ``files``, ``images``, ``particles``, ``failed`` (list of ``{"file", "error"}``),
        ``pixel_size_known``, ``size_distribution`` (mean/median/std/min/max and ``unit``), ``coverage_mean``.
    card
        The segmentation model's card, or None.
    settings
        The analysis settings used.
    histogram_png
        Size histogram image to embed, if any.
    """
    path = Path(path)
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    body = "".join([
        _header(generated),
        "<main>",
        _alerts(images, summary),
        _summary(summary),
        _gallery(images),
        _histogram(histogram_png),
        _particle_table(particles),
        _model_card(card),
        _settings(settings),
        "</main>",
        f"<footer>nanofind {escape(__version__)} · report generated {escape(generated)} · this file is "
        f"self-contained (images embedded, no network access).</footer>",
    ])
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>nanofind particle report</title><style>{_CSS}</style></head>\n"
            f"<body>{body}<script>{_JS}</script></body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, page)
    return path
