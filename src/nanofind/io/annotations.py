"""Burned-in annotations (data bars, scale bars, label boxes) and the unlit area outside the beam.

Images exported from microscope software (TIFF, PNG, JPEG) often carry a data bar along an edge
(voltage, magnification, date, a scale bar) or a scale bar and its label drawn onto the image.
They are not specimen: a white bar with black text shifts the normalisation and Otsu thresholds, and
its letters look like particles (a real micrograph with a 40-row data bar gave 158 "particles"
instead of 16). What gives them away is that they are drawn, not imaged: neighbouring pixels hold
exactly the same value, where any recorded image carries noise (the 20 real micrographs of
``shared/data/real-tem-np`` have at most 22 % equal neighbours in any row or column; the data bars
of the Zeiss and FEI files 68-100 %).

- **Edge bands**: the rows (columns) at an edge, within :data:`EDGE_SLACK_PX` of it, in which at
  least :data:`FLAT_FRACTION` of neighbouring pixels are equal; at most half the image.
- **Outside the beam** (asked for by ``beam_edge=True``; bright-field images, where vacuum is
  bright): an unlit area along the border, below :data:`BEAM_DARK_FRACTION` of the film's level,
  whose edge is an arc of one circle at least :data:`MIN_BEAM_RADIUS_FRACTION` of the image wide,
  as a condenser aperture or a beam not spread over the camera draws it at low magnification.
  A dark particle cut by the border has a convex outline of its own and fits no such circle.
- **Boxes and bars inside the image**: connected areas of drawn pixels (equal to their right and
  lower neighbours) that fill their bounding rectangle (:data:`BOX_FILL`, holes filled, so the text
  in a label box goes with it) and stand out from the image around them by a step (a quarter of
  the image's 1-99 percentile range at least), not a blurred rim as a saturated particle has. Pixels
  of the bar's exact value near it (its label, drawn in the same colour) go with it.

:func:`find_annotations` finds them; :meth:`Annotations.cleaned` gives the image with them replaced
(edge bands and boxes by the mirror image of what lies next to them: a flat fill would look like
vacuum to the choice of model and the thresholds), which is what the networks, thresholds and
measurements see; the particle probability is zero inside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: a row or column is drawn when at least this fraction of its neighbouring pixel pairs are equal, and
#: :data:`FLAT_MARGIN` more than in the image's typical row (images of a few counts per pixel have many)
FLAT_FRACTION = 0.5
FLAT_MARGIN = 0.3
#: boxes are looked for only in images whose typical row has fewer equal neighbours than this
MAX_TYPICAL_FLAT_FOR_BOXES = 0.2
#: rows (columns) at the very edge that may break a band (a last row of noise, a border line)
EDGE_SLACK_PX = 3
#: an edge band is at least this many rows (columns) thick and at most this fraction of the image; it
#: may hold runs of up to BAND_GAP_PX lines of text with fewer equal neighbours between drawn lines
MIN_BAND_PX = 2
BAND_GAP_PX = 16
MAX_BAND_FRACTION = 0.5
#: boxes and bars: at least this many drawn pixels, filling this fraction of their bounding box
MIN_BOX_PX = 24
BOX_FILL = 0.9
#: a box's value differs from the median just outside it by this fraction of the 1-99 percentile range
STEP_FRACTION = 0.25
#: how far (px) from a box or bar pixels of its exact value count as its label
LABEL_REACH_PX = 20

#: outside the beam: smoothed intensity below this fraction of the film's (90th percentile) level
BEAM_DARK_FRACTION = 0.3
#: the beam's circle: radius at least this fraction of the image's shorter side, edge points within
#: BEAM_FIT_TOLERANCE of it (fraction of the radius, median), and the dark area at least MIN_BEAM_AREA
MIN_BEAM_RADIUS_FRACTION = 0.45
BEAM_FIT_TOLERANCE = 0.02
MIN_BEAM_AREA = 0.005
#: where the light is soft, the lit disc ends where the film falls below this fraction of its level inside
BEAM_LIT_FRACTION = 0.9

_EDGES = ("top", "bottom", "left", "right")


@dataclass
class Annotations:
    """Burned-in annotations of one image, and the unlit area outside its beam (:func:`find_annotations`)."""

    mask: np.ndarray  #: bool (rows, columns): True on annotation pixels
    bands: dict = field(default_factory=dict)  #: edge ("top", "bottom", "left", "right") -> thickness, px
    boxes: list = field(default_factory=list)  #: (row0, col0, row1, col1) of boxes and bars inside the image, px
    content: tuple = (0, 0, 0, 0)  #: (row0, col0, row1, col1): the image without its edge bands
    beam: tuple | None = None  #: (row, col, radius) px of the lit disc when the area outside it was found

    @property
    def found(self) -> bool:
        """Whether there is any annotation."""
        return bool(self.bands or self.boxes or self.beam)

    def cleaned(self, image: np.ndarray) -> np.ndarray:
        """``image`` (float32), edge bands and boxes replaced by the image beside them, mirrored."""
        out = np.asarray(image, np.float32)
        if not self.found:
            return out
        r0, c0, r1, c1 = self.content
        h, w = out.shape
        from scipy import ndimage as ndi

        out = np.pad(out[r0:r1, c0:c1], ((r0, h - r1), (c0, w - c1)), mode="symmetric")
        unlit = _outside_circle(out.shape, self.beam) if self.beam is not None else None
        boxes = self.mask.copy()
        boxes[:r0], boxes[r1:], boxes[:, :c0], boxes[:, c1:] = False, False, False, False
        if unlit is not None:
            boxes &= ~unlit
        if boxes.any():
            labels, _ = ndi.label(boxes, structure=np.ones((3, 3)))
            for k, (rows, cols) in enumerate(ndi.find_objects(labels), start=1):
                inside = labels[rows, cols] == k
                out[rows, cols][inside] = _mirrored_beside(out, rows, cols, (r0, c0, r1, c1))[inside]
        if unlit is not None:  # the lit disc mirrored across its edge, as bands are across theirs
            cy, cx, radius = self.beam
            rows, cols = np.nonzero(unlit)
            dy, dx = rows + 0.5 - cy, cols + 0.5 - cx
            r = np.maximum(np.hypot(dy, dx), 1e-9)
            inward = np.clip(2 * radius - r, 0, None) / r
            out[rows, cols] = ndi.map_coordinates(out, [cy + dy * inward - 0.5, cx + dx * inward - 0.5], order=1,
                                                  mode="nearest")
        return out

    def to_dict(self) -> dict:
        """JSON-able record: edge bands (px), boxes, the beam's circle, and the share of the image they take."""
        return {"bands_px": dict(self.bands), "boxes_px": [list(map(int, b)) for b in self.boxes],
                "beam_circle_px": None if self.beam is None else [round(float(v), 1) for v in self.beam],
                "fraction": round(float(self.mask.mean()), 4)}

    def sentence(self) -> str:
        """What was left out, in words (empty when nothing was)."""
        parts = [f"a burned-in {px}-pixel data bar at the {edge}" for edge, px in self.bands.items()]
        if self.beam is not None:
            parts.insert(0, f"the unlit area outside the beam (a circle of radius {self.beam[2]:.0f} px)")
        if self.boxes:
            parts.append(f"{len(self.boxes)} burned-in scale bar{'s' if len(self.boxes) > 1 else ''} or label box"
                         f"{'es' if len(self.boxes) > 1 else ''}")
        return (" and ".join(parts) + " left out") if parts else ""


def _mirrored_beside(image: np.ndarray, rows: slice, cols: slice, content: tuple) -> np.ndarray:
    """The image next to the rectangle (rows, cols), mirrored onto it: above, below, left or right, where it fits.

    A flat fill would be a patch of nothing, which the choice of model and the thresholds take for
    vacuum; the mirror image keeps the texture around it.
    """
    r0, c0, r1, c1 = content
    h, w = rows.stop - rows.start, cols.stop - cols.start
    if rows.start - h >= r0:
        return image[rows.start - h:rows.start, cols][::-1]
    if rows.stop + h <= r1:
        return image[rows.stop:rows.stop + h, cols][::-1]
    if cols.start - w >= c0:
        return image[rows, cols.start - w:cols.start][:, ::-1]
    if cols.stop + w <= c1:
        return image[rows, cols.stop:cols.stop + w][:, ::-1]
    return np.full((h, w), np.median(image[r0:r1, c0:c1]), np.float32)


def _outside_circle(shape: tuple[int, int], circle: tuple) -> np.ndarray:
    """Pixels whose centre lies outside ``circle`` (row, col, radius; px)."""
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    cy, cx, radius = circle
    return (rows + 0.5 - cy) ** 2 + (cols + 0.5 - cx) ** 2 > radius**2


def _beam_circle(image: np.ndarray) -> tuple | None:
    """(row, col, radius) px of the lit disc when the image has an unlit area outside it (module docstring)."""
    from scipy import ndimage as ndi

    h, w = image.shape
    step = max(1, min(h, w) // 256)
    small = ndi.gaussian_filter(np.asarray(image, np.float64)[::step, ::step], 2.0)
    level = float(np.percentile(small, 90))
    if not level > 0:
        return None
    dark = small < BEAM_DARK_FRACTION * level
    labels, _ = ndi.label(dark)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    unlit = np.isin(labels, border[border > 0])
    if unlit.mean() < MIN_BEAM_AREA:
        return None
    edge = unlit & ~ndi.binary_erosion(unlit, border_value=1)
    y, x = np.nonzero(edge)
    if len(y) < 20:
        return None
    y, x = y + 0.5, x + 0.5
    # algebraic circle fit: x² + y² + D x + E y + F = 0
    design = np.column_stack([x, y, np.ones_like(x)])
    (d, e, f), *_ = np.linalg.lstsq(design, -(x**2 + y**2), rcond=None)
    cx, cy = -d / 2, -e / 2
    radius2 = cx**2 + cy**2 - f
    if not radius2 > 0:
        return None
    radius = float(np.sqrt(radius2))
    sh, sw = small.shape
    if radius < MIN_BEAM_RADIUS_FRACTION * min(sh, sw) or not (0 <= cy <= sh and 0 <= cx <= sw):
        return None
    if np.median(np.abs(np.hypot(x - cx, y - cy) - radius)) > BEAM_FIT_TOLERANCE * radius:
        return None
    rows, cols = np.indices(small.shape)
    distance = np.hypot(rows + 0.5 - cy, cols + 0.5 - cx)
    outside = distance > radius
    if unlit[~outside].mean() > 0.01 or dark[outside].mean() < 0.8:
        return None
    # the edge of the light is soft: the circle is drawn in to where the film is lit as it is inside
    inner = float(np.median(small[distance < 0.8 * radius]))
    lit_to = radius
    while lit_to > 0.8 * radius:
        ring = (distance >= lit_to - 1) & (distance < lit_to)
        if ring.any() and np.median(small[ring]) >= BEAM_LIT_FRACTION * inner:
            break
        lit_to -= 1.0
    return cy * step, cx * step, (lit_to - 1.0) * step


def _flat_fraction(image: np.ndarray, axis: int) -> np.ndarray:
    """Per row (``axis=1``) or column (``axis=0``): the fraction of neighbouring pixel pairs along it that are equal."""
    a = image if axis == 1 else image.T
    return (a[:, 1:] == a[:, :-1]).mean(axis=1) if a.shape[1] > 1 else np.zeros(a.shape[0])


def _band_from_edge(flat: np.ndarray, threshold: float) -> int:
    """Thickness (px) of the drawn band at the start of ``flat`` (per-line fractions), 0 when there is none."""
    drawn = flat >= threshold
    start = next((i for i in range(min(EDGE_SLACK_PX + 1, len(drawn))) if drawn[i]), None)
    if start is None:
        return 0
    end = start
    while end < len(drawn) and drawn[end]:
        end += 1
        after = drawn[end:end + BAND_GAP_PX + 1]
        if end < len(drawn) and not drawn[end] and after.any():  # a line of text: the band goes on past it
            end += int(np.argmax(after))
    if end - start < MIN_BAND_PX or end > MAX_BAND_FRACTION * len(drawn):
        return 0
    return end


def _boxes(image: np.ndarray, content: tuple) -> tuple[np.ndarray, list]:
    """Mask and bounding boxes (row0, col0, row1, col1) of the drawn boxes and bars inside ``content``."""
    from scipy import ndimage as ndi

    r0, c0, r1, c1 = content
    a = image[r0:r1, c0:c1]
    mask = np.zeros(image.shape, bool)
    if min(a.shape) < 4:
        return mask, []
    drawn = np.zeros(a.shape, bool)
    drawn[:-1, :-1] = (a[:-1, :-1] == a[:-1, 1:]) & (a[:-1, :-1] == a[1:, :-1])
    if drawn.sum() < MIN_BOX_PX:
        return mask, []
    clusters, _ = ndi.label(drawn, structure=np.ones((3, 3)))
    sizes = np.bincount(clusters.ravel())
    sizes[0] = 0
    big = np.flatnonzero(sizes >= MIN_BOX_PX)
    if not len(big):
        return mask, []
    low, high = np.percentile(a[::4, ::4], [1, 99])  # every 16th pixel is plenty for the range
    step = STEP_FRACTION * max(float(high - low), 1e-12)
    sub = np.zeros(a.shape, bool)
    boxes = []
    where = ndi.find_objects(clusters)
    for k in big:
        cluster = where[k - 1]
        members = clusters[cluster] == k
        values, counts = np.unique(a[cluster][members], return_counts=True)
        for value in values[counts >= MIN_BOX_PX]:  # one colour at a time: a white box holding black text
            part, _ = ndi.label(members & (a[cluster] == value))
            for j, region in enumerate(ndi.find_objects(part), start=1):
                piece = part[region] == j
                if piece.sum() < MIN_BOX_PX or min(piece.shape) < 2 or ndi.binary_fill_holes(piece).mean() < BOX_FILL:
                    continue
                # a drawn pixel equals its right and lower neighbours: the area's last row and column are not
                box = tuple(slice(c.start + s.start, min(c.start + s.stop + 1, n))
                            for c, s, n in zip(cluster, region, a.shape, strict=True))
                grown = tuple(slice(max(s.start - 2, 0), min(s.stop + 2, n)) for s, n in zip(box, a.shape, strict=True))
                ring = np.ones([g.stop - g.start for g in grown], bool)  # the 2 px around the box
                ring[tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown, strict=True))] = False
                if not ring.any() or abs(float(np.median(a[grown][ring])) - float(value)) < step:
                    continue  # a blurred rim: a saturated particle, not a drawing
                near = tuple(slice(max(s.start - LABEL_REACH_PX, 0), min(s.stop + LABEL_REACH_PX, n))
                             for s, n in zip(box, a.shape, strict=True))
                sub[near] |= ndi.binary_dilation(a[near] == value)  # its label, drawn in the same colour
                sub[box] = True
                boxes.append((box[0].start + r0, box[1].start + c0, box[0].stop + r0, box[1].stop + c0))
    mask[r0:r1, c0:c1] = sub
    outer = [b for b in boxes if not any(o != b and o[0] <= b[0] and o[1] <= b[1] and o[2] >= b[2] and o[3] >= b[3]
                                         for o in boxes)]
    return mask, sorted(set(outer))


def find_annotations(image: np.ndarray, data_bar_rows: int | None = None, *, beam_edge: bool = False) -> Annotations:
    """The burned-in annotations of a 2D image (module docstring): edge bands, then boxes and bars inside.

    ``image`` is the micrograph as read (any dtype; exact equality of neighbours is what is looked
    for, so it must not have been resampled or filtered). ``data_bar_rows``: the rows of a data bar
    at the bottom that the file declares (FEI/Thermo Fisher TIFFs; the metadata's
    ``data_bar_rows``), taken as a bottom band whatever its pixels. ``beam_edge``: look for an
    unlit area outside the beam too (bright-field images only: in HAADF, vacuum is dark).
    Returns :class:`Annotations`; its ``mask`` is False everywhere on images without any.
    """
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {a.shape}")
    h, w = a.shape
    rows, cols = _flat_fraction(a, 1), _flat_fraction(a, 0)
    typical = float(np.median(np.concatenate([rows, cols])))
    line = max(FLAT_FRACTION, typical + FLAT_MARGIN)
    bands = {"top": _band_from_edge(rows, line), "bottom": _band_from_edge(rows[::-1], line),
             "left": _band_from_edge(cols, line), "right": _band_from_edge(cols[::-1], line)}
    if data_bar_rows and 0 < int(data_bar_rows) < h // 2:
        bands["bottom"] = max(bands["bottom"], int(data_bar_rows))
    bands = {edge: px for edge, px in bands.items() if px}
    content = (bands.get("top", 0), bands.get("left", 0), h - bands.get("bottom", 0), w - bands.get("right", 0))
    if content[2] - content[0] < 2 or content[3] - content[1] < 2:  # all drawn: nothing to leave out
        return Annotations(np.zeros((h, w), bool), content=(0, 0, h, w))
    if typical < MAX_TYPICAL_FLAT_FOR_BOXES:
        mask, boxes = _boxes(a, content)
    else:  # counts so few that equal neighbours are common: only edge bands stand out
        mask, boxes = np.zeros((h, w), bool), []
    r0, c0, r1, c1 = content
    mask[:r0], mask[r1:], mask[:, :c0], mask[:, c1:] = True, True, True, True
    beam = _beam_circle(a[r0:r1, c0:c1]) if beam_edge else None
    if beam is not None:
        beam = (beam[0] + r0, beam[1] + c0, beam[2])
        mask |= _outside_circle((h, w), beam)
    return Annotations(mask, {e: bands[e] for e in _EDGES if e in bands}, boxes, content, beam)
