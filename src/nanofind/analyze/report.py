"""Self-contained HTML report of a ``nanofind analyze`` run: the page's content, rendered by a Jinja2 template.

One file a microscopist can open in any browser or attach to an e-mail: every image is embedded as a
base64 ``data:`` URI, the styling and the small table-sorting script are inline, and nothing is fetched
from the network. The page holds a summary (with the files that failed and a warning when sizes are in
pixels), a gallery of the overlays, the size histogram, the particle table (every column of the
:class:`~nanofind.analyze.table.ParticleTable`, later stages' included), the segmentation model's card
and the analysis settings.

The layout is ``templates/report.html.j2`` (autoescaped: every value is text); this module prepares
what it shows: numbers formatted, PNGs as data URIs, long tables cut.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from nanofind._files import write_text_atomic
from nanofind._version import __version__
from nanofind.analyze.table import ParticleTable, as_table
from nanofind.learn.card import ModelCard

#: The particle table on the page is cut to this many rows (the full table lives in the table files).
MAX_TABLE_ROWS = 2000
#: The page's template, in the package.
TEMPLATE = Path(__file__).with_name("templates") / "report.html.j2"


def _plain(value):
    """NumPy scalars to Python scalars (values may come straight from arrays)."""
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
    """Text of any value: numbers formatted, containers as compact JSON (the template escapes it)."""
    value = _plain(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    if isinstance(value, bool | int | float) or value is None:
        return _number(value)
    return str(value)


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


def _percent(fraction) -> str:
    return "–" if _is_missing(fraction) else f"{100 * float(fraction):.1f} %"


def _image_title(image: dict) -> str:
    name, frame = str(image.get("file", "")), image.get("frame")
    return name if frame is None else f"{name}, frame {frame}"


def _alerts(images: list[dict], summary: dict) -> dict:
    failed = [{"file": str(item.get("file", "?")), "error": str(item.get("error", ""))}
              for item in summary.get("failed") or []]
    warned = [im for im in images if im.get("warnings")]
    warnings = [{"title": _image_title(im), "warning": str(w)} for im in warned for w in im["warnings"]]
    unknown = [im for im in images if im.get("pixel_size_A") is None]
    unit = (summary.get("size_distribution") or {}).get("unit")
    pixels = None
    if unknown or summary.get("pixel_size_known") is False or unit == "px":
        if images and len(unknown) == len(images):
            what = "The pixel size is unknown for every image"
        elif unknown:
            what = f"The pixel size is unknown for {len(unknown)} of {len(images)} images"
        else:
            what = "The pixel size is unknown for some images"
        left_out = any(str(e.get("reason", "")).startswith("pixel size unknown")
                       for e in summary.get("size_distribution_excludes") or [])
        pixels = {"what": what, "stats_in_px": unit == "px", "left_out": left_out}
    excludes = summary.get("size_distribution_excludes") or []
    return {"failed": failed, "warnings": warnings, "warned_images": len(warned),
            "warned_left_out": any(e.get("reason", "warned about") == "warned about" for e in excludes),
            "pixels": pixels}


def _cards(summary: dict) -> list[dict]:
    dist = summary.get("size_distribution") or {}
    unit = str(dist.get("unit") or ("nm" if summary.get("pixel_size_known") else "px"))
    failed = summary.get("failed") or []
    mean, std = dist.get("mean"), dist.get("std")
    mean_text = _size(mean, unit)
    if not _is_missing(mean) and not _is_missing(std):
        mean_text = f"{_number(mean, 3)} ± {_number(std, 2)} {unit}"
    cards = [("Files", _text(summary.get("files")), ""),
             ("Images", _text(summary.get("images")), "frames analysed"),
             ("Particles", _text(summary.get("particles")), ""),
             ("Failed", _text(len(failed)), "see the list above" if failed else ""),
             ("Mean coverage", _percent(summary.get("coverage_mean")), "particle area fraction"),
             ("Mean diameter", mean_text, "equivalent diameter ± std"),
             ("Median diameter", _size(dist.get("median"), unit), ""),
             ("Range", _range(dist.get("min"), dist.get("max"), unit), "min – max")]
    return [{"label": label, "value": value, "sub": sub} for label, value, sub in cards]


def _gallery(images: list[dict]) -> list[dict]:
    out = []
    for image in images:
        if not _is_missing(image.get("mean_diameter_nm")):
            size = f"{_number(image['mean_diameter_nm'], 3)} nm"
        elif not _is_missing(image.get("mean_diameter_px")):
            size = f"{_number(image['mean_diameter_px'], 3)} px"
        else:
            size = "–"
        pixel, n, zoom = image.get("pixel_size_A"), image.get("n_particles"), image.get("zoom")
        stats = [(f"{_text(n)} particle{'' if n == 1 else 's'}", False),
                 (f"coverage {_percent(image.get('coverage'))}", False),
                 (f"mean diameter {size}", False),
                 ("pixel " + ("unknown" if _is_missing(pixel) else f"{_number(pixel, 3)} Å"), False)]
        choice = image.get("model") if isinstance(image.get("model"), dict) else None
        if choice:
            stats.append((f"model {choice.get('model')}: {choice.get('reason')}", False))
        if not _is_missing(zoom) and zoom != 1:
            working = image.get("working_pixel_size_A")
            stats.append((f"segmented at {_number(zoom, 3)}×" +
                          ("" if _is_missing(working) else f" ({_number(working, 3)} Å)"), False))
        adopted = image.get("threshold_outlines") or 0
        if image.get("outlines_refined"):
            stats.append(("small particles: outlines moved to the image's half-contrast edges" +
                          (f", {adopted} taken from an Otsu threshold that agreed" if adopted else ""), False))
        elif adopted:
            stats.append((f"{adopted} outline{'' if adopted == 1 else 's'} taken from an Otsu threshold that agreed",
                          False))
        if not _is_missing(image.get("otsu_agreement_dice")):
            stats.append((f"agrees with an Otsu threshold at Dice {_number(image['otsu_agreement_dice'], 2)}, "
                          f"unsure of {_percent(image.get('unsure_fraction'))}", bool(image.get("review"))))
        if image.get("warnings"):
            stats.append((f"⚠ {len(image['warnings'])} warning(s), see above", True))
        if not _is_missing(image.get("seconds")):
            stats.append((f"{float(image['seconds']):.1f} s", False))
        title = _image_title(image)
        out.append({"title": title, "uri": _png_uri(image.get("overlay_png")),
                    "overlay_png": str(image.get("overlay_png")),
                    "stats": [{"text": text, "warn": warn} for text, warn in stats]})
    return out


def _cell(value) -> dict:
    """A table cell: its text, and for numbers (flags as 0/1) the raw value the page sorts by."""
    value = _plain(value)
    if isinstance(value, bool):
        return {"v": str(int(value)), "text": _text(value)}
    if isinstance(value, int | float) and not _is_missing(value):
        return {"v": repr(float(value)), "text": _text(value)}
    return {"v": None, "text": _text(value)}


def _particle_table(table: ParticleTable) -> dict:
    shown = table.select(np.arange(min(len(table), MAX_TABLE_ROWS)))
    return {"columns": list(table.columns), "total": len(table), "shown": len(shown),
            "omitted": len(table) - len(shown),
            "rows": [[_cell(row[c]) for c in table.columns] for row in shown.rows()]}


def _metrics(test: dict) -> dict:
    """Test metrics: one row per test set when the entries are dicts, plus the plain entries as key/value."""
    sets = {k: v for k, v in test.items() if isinstance(v, dict)}
    keys: list[str] = []
    for values in sets.values():
        keys.extend(k for k, v in values.items() if k not in keys and not isinstance(v, dict | list | str))
    return {"columns": keys,
            "sets": [{"name": str(name), "data": str(values["data"]) if values.get("data") else "",
                      "cells": [_text(values.get(k)) for k in keys]} for name, values in sets.items()],
            "plain": [(str(k), _text(v)) for k, v in test.items() if k not in sets]}


def _model(card: ModelCard | dict | None, name: str | None = None, images: int | None = None) -> dict | None:
    """One model's section: key facts, the test metrics and the whole card as JSON (None without a card).

    ``name`` is the model's name in the run (``--model auto`` uses several) and ``images`` how many it segmented.
    """
    if card is None:
        return None
    if not isinstance(card, ModelCard):  # a card's JSON record, of either layout
        card = ModelCard.from_record(card, "model card")
    pixel_range, working = card.pixel_size_range_A, card.working_pixel_size_range_A or card.pixel_size_range_A
    facts = [
        ("task", card.task),
        ("architecture", card.architecture),
        ("options", card.options or None),
        ("classes", card.classes),
        ("threshold", card.threshold),
        ("calibration", card.calibration),
        ("training pixel size (Å)", card.pixel_size_A),
        ("training pixel size range (Å)", " – ".join(_number(v, 3) for v in pixel_range) if pixel_range else None),
        ("segments at pixel sizes (Å; others are resampled)",
         " – ".join(_number(v, 3) for v in working) if working else None),
        ("normalisation", card.normalisation.describe()),
        ("trained on", (card.training.engine or {}).get("cpu_model")),
        ("model made with nanofind", card.nanofind_version),
    ]
    if card.imaging:
        facts.insert(0, ("for micrographs", {"hrtem": "HRTEM (lattice fringes)",
                                             "bright_field": "low-magnification bright field"}[card.imaging]))
    if card.particle_diameter_px:
        facts.append(("trained particle diameters (px; smallest, typical, largest)",
                      ", ".join(_number(v, 3) for v in card.particle_diameter_px)))
    if card.hysteresis_low is not None:
        facts.insert(facts.index(("threshold", card.threshold)) + 1, ("hysteresis low threshold", card.hysteresis_low))
    if card.refine_outlines_below_px is not None:
        facts.append(("outlines moved to the image's half-contrast edge for particles below (px)",
                      card.refine_outlines_below_px))
    test = card.metrics.get("test")
    return {"name": name, "images": images, "architecture": card.architecture, "threshold": _text(card.threshold),
            "facts": [(k, _text(v)) for k, v in facts if v is not None],
            "metrics": _metrics(test) if isinstance(test, dict) and test else None, "json": _json(card.record())}


def _models(card, cards: dict | None, images: list[dict]) -> list[dict]:
    """A section per model: each of ``cards`` that segmented an image (by name), else the one ``card``."""
    used: dict[str, int] = {}
    for image in images:
        choice = image.get("model")
        if isinstance(choice, dict) and choice.get("model"):
            used[str(choice["model"])] = used.get(str(choice["model"]), 0) + 1
    if cards and used:
        return [_model(cards[name], name, n) for name, n in used.items() if name in cards]
    one = _model(card)
    return [one] if one else []


def report_context(*, images: list[dict], particles: ParticleTable | list[dict], summary: dict,
                   card: ModelCard | dict | None, settings: dict, histogram_png: Path | None = None,
                   generated: str | None = None, cards: dict | None = None) -> dict:
    """What the report template shows, as plain text and data URIs (arguments: see :func:`write_report`)."""
    if generated is None:
        generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return {
        "version": __version__, "generated": generated, **_alerts(images, summary),
        "cards": _cards(summary), "summary_json": _json(summary), "images": _gallery(images),
        "histogram_uri": _png_uri(histogram_png), "table": _particle_table(as_table(particles)),
        "defects": _defects(images, summary),
        "models": _models(card, cards, images), "settings": [(str(k), _text(v)) for k, v in (settings or {}).items()],
    }


#: Example crops per class shown in the report.
EXAMPLES_PER_CLASS = 8


def _fraction_text(stat: dict | None) -> tuple[str, str]:
    if not stat:
        return "–", "no particles"
    low, high = stat["ci95"]
    return _percent(stat["value"]), f"95 % CI {_percent(low)} – {_percent(high)}, n = {stat['n']}"


def _defects(images: list[dict], summary: dict) -> dict | None:
    """The report's defect-class section: population figures and example crops per class."""
    stats = summary.get("defect_classes")
    if not stats:
        return None
    from nanofind.classify.classes import CLASS_NAMES

    on_axis, on_axis_sub = _fraction_text(stats.get("on_zone_axis_fraction"))
    faulted, faulted_sub = _fraction_text(stats.get("faulted_fraction_on_axis"))
    cards = [{"label": "On a zone axis", "value": on_axis, "sub": on_axis_sub},
             {"label": "Faulted, of those on axis", "value": faulted, "sub": faulted_sub},
             {"label": "Classified", "value": _text(stats.get("classified")),
              "sub": f"{_text(stats.get('not_classified'))} not (bright-field images)"}]
    examples = [e for i in images for e in (i.get("defect_examples") or [])]
    gallery = []
    for name in CLASS_NAMES:
        mine = sorted((e for e in examples if e["class"] == name), key=lambda e: -e["probability"])
        shown = [{"uri": _png_uri(e["png"]),
                  "caption": f"#{e['particle_id']} {Path(e['png']).stem.rsplit('_particle', 1)[0]}, "
                             f"p = {_number(e['probability'], 2)}"} for e in mine[:EXAMPLES_PER_CLASS]]
        gallery.append({"name": name, "count": stats["counts"].get(name, 0), "examples": shown})
    method = (stats.get("classifier") or {}).get("method")
    accuracy = (stats.get("classifier") or {}).get("cross_validated_balanced_accuracy")
    of = (stats.get("classifier") or {}).get("cross_validated")
    what = ("Every particle of an HRTEM image is classified from its crop (seed 004, ch. 3): fault (a planar "
            "defect edge-on), no_fault (on a zone axis), misoriented (lattice planes, no columns), agglomerate, "
            f"empty. Classifier: {method}" + (f", cross-validated balanced accuracy {_number(accuracy, 3)} on "
                                              "simulated crops" + (f" ({of})" if of else "")
                                              if accuracy is not None else "") + "."
            + (" The fractions are expected counts, the sums of the particles' class probabilities, so that "
               "unsure particles count in proportion rather than all to their likelier class."
               if str(stats.get("estimator", "")).startswith("expected") else ""))
    return {"cards": cards, "gallery": gallery, "what": what}


@lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    return env.get_template(TEMPLATE.name)


def render_report(**arguments) -> str:
    """The report page as HTML text (arguments: see :func:`write_report`)."""
    return _template().render(report_context(**arguments))


def write_report(path: Path, *, images: list[dict], particles: ParticleTable | list[dict], summary: dict,
                 card: ModelCard | dict | None, settings: dict, histogram_png: Path | None = None,
                 cards: dict | None = None) -> Path:
    """Write the self-contained HTML report of an analysis run and return its path.

    Parameters
    ----------
    path
        Output ``.html`` file (written atomically: temporary file, then rename).
    images
        One dict per analysed image (frame): ``file``, ``frame``, ``overlay_png`` (PNG on disk),
        ``n_particles``, ``coverage``, ``pixel_size_A``, ``mean_diameter_nm``, ``mean_diameter_px``, ``seconds``,
        and optionally ``warnings``, ``zoom``, ``working_pixel_size_A`` and ``model`` (the model chosen and
        why: :class:`~nanofind.segment.model_choice.ModelDecision` record).
    particles
        The particle table (a :class:`~nanofind.analyze.table.ParticleTable`, or its rows as dicts): every
        column is shown, missing values as empty cells. At most :data:`MAX_TABLE_ROWS` rows are shown and
        the page says how many were left out.
    summary
        Run summary: ``files``, ``images``, ``particles``, ``failed`` (list of ``{"file", "error"}``),
        ``pixel_size_known``, ``size_distribution`` (mean/median/std/min/max and ``unit``), ``coverage_mean``.
    card
        The segmentation model's card (a :class:`~nanofind.learn.card.ModelCard` or its JSON record), or None.
    cards
        With ``--model auto``: every model's card by name; each one that segmented an image (its name in
        the image's ``model`` record) gets a section, instead of ``card``.
    settings
        The analysis settings used.
    histogram_png
        Size histogram image to embed, if any.
    """
    path = Path(path)
    page = render_report(images=images, particles=particles, summary=summary, card=card, settings=settings,
                         histogram_png=histogram_png, cards=cards)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, page)
    return path
