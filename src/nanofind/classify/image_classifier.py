"""Image classifiers of any classes, trained through wrong labels (seed 004, ch. 5; issue 15).

``nanofind classify train DATA... --labels labels.csv --method standard|two-step|coteaching|elr``
trains one (:mod:`nanofind.learn.noisy_labels`) from a ``file,label`` table; ``nanofind classify
IMAGES --model DIR`` uses it as it uses a defect classifier. A model directory holds
``classifier.safetensors`` (the network, or both co-teaching networks as ``net0.*`` and ``net1.*``)
and ``card.json`` (task ``image_classification``, classes, method, input size, noise rate and
training record). Nothing is unpickled.

A two-class set whose images come in exact left-right mirror pairs with opposite labels (what
``nanofind dataset mirror-label`` writes) trains a mirror-odd network by default
(:func:`nanofind.learn.noisy_labels.mirror_odd_network`; ``--mirror-odd auto|yes|no``).

Every image becomes one square input of :data:`INPUT_PX` px: padded to a square with its border
median, resampled (anti-aliased), then scaled to zero mean and unit standard deviation.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanofind._files import write_atomic, write_text_atomic
from nanofind._version import __version__
from nanofind.errors import NanofindInputError

TASK = "image_classification"
WEIGHTS_FILE = "classifier.safetensors"
CARD_FILE = "card.json"
#: Side of the network's input, px: the size benchmarks/bench_label_noise.py measures every method
#: at. At 64 px the seed's two-block network, 25 epochs, relabel at 40 % error on held-out chiral
#: set b stayed at chance (0.50 and 0.505, seeds 0–1), where 32 px scored 0.92 and 0.96; a third
#: block at 64 px did not help (0.59, 0.475), at 32 px it gave 0.977 (docs/benchmarks.md).
INPUT_PX = 32
#: Most rows of a labels table.
MAX_ROWS = 1_000_000
#: ``--mirror-odd auto`` chooses the mirror-odd network when at least this share of the items has
#: its exact left-right mirror in the set, labelled with the other class.
MIRROR_PAIR_SHARE = 0.9
#: ``--rotation auto`` augments by any angle when the set's pooled edge orientations
#: (:func:`orientation_anisotropy`) are this close to uniform, by quarter turns otherwise. Measured:
#: 1000 simulated chiral particles at random angles 0.000, pure noise 0.025, scikit-learn's upright
#: sevens 0.31 (0.26 mirror-labelled), hooked bars lined up with the pixel axes 0.32. Ten upright
#: bars gave 0.02: below about 30 images a preference is hard to tell from chance, and any angle is
#: chosen.
ANY_ANGLE_MAX_ANISOTROPY = 0.1


def prepare_image(image: np.ndarray, input_px: int = INPUT_PX) -> np.ndarray:
    """One image as the network's (input_px, input_px) float32 input."""
    from skimage.transform import resize

    x = np.asarray(image, dtype=np.float64)
    h, w = x.shape
    side = max(h, w)
    if h != w:
        border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
        square = np.full((side, side), np.median(border))
        top, left = (side - h) // 2, (side - w) // 2
        square[top:top + h, left:left + w] = x
        x = square
    if side != input_px:
        x = resize(x, (input_px, input_px), order=1, anti_aliasing=side > input_px, preserve_range=True)
    x = x - x.mean()
    return (x / max(x.std(), 1e-12)).astype(np.float32)


def prepare_images(images, input_px: int = INPUT_PX) -> np.ndarray:
    """A list of 2D images as an (n, input_px, input_px) float32 stack."""
    if not len(images):
        return np.zeros((0, input_px, input_px), dtype=np.float32)
    return np.stack([prepare_image(im, input_px) for im in images])


@dataclass(frozen=True)
class LabelledFiles:
    """Image files and their labels, as a ``file,label`` table names them."""

    files: list[Path]
    labels: list[str]

    @property
    def classes(self) -> list[str]:
        """Sorted class names."""
        return sorted(set(self.labels))


def read_labels(table: str | Path, data: list[str] | None = None) -> LabelledFiles:
    """Rows of a ``file,label`` CSV, each file resolved to an existing image.

    A ``file`` is looked up as given (absolute), beside the table, then inside each of the ``data``
    folders (and among ``data`` files by name). Any problem is one clear error naming the table and
    the row: a missing table or column, an image that is not found, an empty label.
    """
    table = Path(table)
    if not table.is_file():
        raise NanofindInputError(f"{table}: no such labels file")
    folders = [Path(d) for d in data or [] if Path(d).is_dir()]
    by_name = {Path(d).name: Path(d) for d in data or [] if Path(d).is_file()}
    files, labels = [], []
    try:
        with open(table, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {"file", "label"} - set(reader.fieldnames or [])
            if missing:
                raise NanofindInputError(f"{table}: needs columns file,label; missing {','.join(sorted(missing))} "
                                         f"(found {','.join(reader.fieldnames or []) or 'nothing'})")
            for line, row in enumerate(reader, start=2):
                if line > MAX_ROWS:
                    raise NanofindInputError(f"{table}: more than {MAX_ROWS} rows")
                name, label = (row.get("file") or "").strip(), (row.get("label") or "").strip()
                if not name or not label:
                    raise NanofindInputError(f"{table} line {line}: empty file or label")
                files.append(_resolve(name, table, folders, by_name, line))
                labels.append(label)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NanofindInputError(f"{table}: unreadable labels table ({exc})") from None
    if not files:
        raise NanofindInputError(f"{table}: no rows")
    return LabelledFiles(files, labels)


def _resolve(name: str, table: Path, folders: list[Path], by_name: dict[str, Path], line: int) -> Path:
    path = Path(name)
    candidates = [path] if path.is_absolute() else [table.parent / path, *(f / path for f in folders)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if path.name in by_name:
        return by_name[path.name]
    raise NanofindInputError(f"{table} line {line}: unknown image {name!r} (not found beside the table"
                             f"{' or in ' + ', '.join(map(str, folders)) if folders else ''})")


def group_names(files: list[Path]) -> list[str]:
    """Group of each file: its stem without a ``_mirror`` suffix, so an image and its mirror stay together."""
    return [str(f.with_name(f.stem.removesuffix("_mirror"))) for f in files]


def mirror_pair_share(images, labels) -> float:
    """Share of the items whose exact left-right mirror (columns reversed) is in the set with another label.

    1.0 for a set written by ``nanofind dataset mirror-label``; near 0 for unrelated images. Images
    are compared bit for bit (a hash of their float32 values), so the cost is one pass.
    """
    import hashlib

    def key(a: np.ndarray) -> bytes:
        a = np.ascontiguousarray(a, dtype=np.float32)
        return hashlib.blake2b(a.tobytes() + repr(a.shape).encode(), digest_size=16).digest()

    seen: dict[bytes, set[str]] = {}
    for image, label in zip(images, labels, strict=True):
        seen.setdefault(key(image), set()).add(label)
    paired = sum(bool(seen.get(key(np.asarray(image)[:, ::-1]), set()) - {label})
                 for image, label in zip(images, labels, strict=True))
    return paired / max(len(labels), 1)


def choose_mirror_odd(choice: str, images, labels, *, share: float | None = None) -> bool:
    """``--mirror-odd`` is ``yes``, ``no`` or ``auto``: yes for two classes in mirror pairs.

    ``share``: :func:`mirror_pair_share` of the set when already known.
    """
    if choice not in ("auto", "yes", "no"):
        raise NanofindInputError(f"must be auto, yes or no, got {choice!r}", "--mirror-odd")
    if choice != "auto":
        return choice == "yes"
    if len(set(labels)) != 2:
        return False
    return (mirror_pair_share(images, labels) if share is None else share) >= MIRROR_PAIR_SHARE


def orientation_anisotropy(images, *, sigma_px: float = 1.0) -> float:
    """How far the set's edges keep to preferred directions beyond chance: 0 (none) to 1 (one axis).

    Every image is prepared at 32 px (:func:`prepare_image`). Its gradient (Gaussian derivative of
    ``sigma_px``) gives the energy-weighted means z₂ = ⟨e^{2iθ}⟩ and z₄ = ⟨e^{4iθ}⟩ of the edge
    angle θ: the second harmonic finds one preferred axis (upright digits), the fourth a grid of two
    (shapes lined up with the pixel axes). For each harmonic the modulus of the mean of z over the
    n images, less three times its chance level √(mean |z|² / n) (objects at random angles: the
    phases cancel, and a few elongated ones must not count as a preference), is the anisotropy; the
    larger of the two is returned, at least 0.
    """
    from scipy import ndimage as ndi

    x = prepare_images(list(images), 32).astype(np.float64)
    if not len(x):
        return 0.0
    gy = ndi.gaussian_filter(x, (0, sigma_px, sigma_px), order=(0, 1, 0))
    gx = ndi.gaussian_filter(x, (0, sigma_px, sigma_px), order=(0, 0, 1))
    energy, angle = gx ** 2 + gy ** 2, np.arctan2(gy, gx)
    per_image = np.maximum(energy.sum(axis=(1, 2)), 1e-300)
    values = []
    for k in (2, 4):
        z = (energy * np.exp(1j * k * angle)).sum(axis=(1, 2)) / per_image
        values.append(abs(z.mean()) - 3 * np.sqrt(np.mean(np.abs(z) ** 2) / len(z)))
    return float(max(max(values), 0.0))


def choose_rotation(choice: str, images, *, anisotropy: float | None = None) -> str:
    """``--rotation`` is ``any``, ``quarter`` or ``auto``: the augmentation's in-plane turns.

    ``auto`` is ``any`` when :func:`orientation_anisotropy` is below :data:`ANY_ANGLE_MAX_ANISOTROPY`
    (the images come at any angle), else ``quarter`` (the seed's quarter turns ±5°). Turning upright
    digits by any angle cost mirror-labelled sevens at 40 % error 0.99 → 0.81 clean accuracy; turning
    particles that lie at any angle by any angle raised a held-out chiral set 0.875 → 0.915
    (two-step, 4 seeds; docs/benchmarks.md).
    """
    if choice not in ("auto", "any", "quarter"):
        raise NanofindInputError(f"must be auto, any or quarter, got {choice!r}", "--rotation")
    if choice != "auto":
        return choice
    value = orientation_anisotropy(images) if anisotropy is None else anisotropy
    return "any" if value < ANY_ANGLE_MAX_ANISOTROPY else "quarter"


@dataclass
class ImageClassifier:
    """Trained networks (one, or two averaged) and their card."""

    networks: list
    card: dict

    @property
    def classes(self) -> list[str]:
        """Class names, in the order of the probability columns."""
        return list(self.card["classes"])

    def predict_proba(self, images) -> np.ndarray:
        """Class probabilities (n, K) of a list of 2D images."""
        from nanofind.learn.noisy_labels import predict_proba

        x = prepare_images(images, int(self.card["input_px"]))
        if not len(x):
            return np.zeros((0, len(self.classes)))
        return predict_proba(self.networks, x)


def train_image_classifier(images, labels: list[str], *, settings, clean_images=None, clean_labels=None,
                           groups=None, record: dict | None = None, input_px: int = INPUT_PX,
                           progress=None) -> ImageClassifier:
    """Train on 2D images with (possibly wrong) string labels; ``settings`` is a NoisyTrainingSettings."""
    from nanofind.learn.noisy_labels import train_noisy

    classes = sorted(set(labels))
    if len(classes) < 2:
        raise NanofindInputError(f"training needs at least two classes; the labels hold only {classes}")
    index = {c: k for k, c in enumerate(classes)}
    clean_y = None
    if clean_labels is not None:
        unknown = sorted(set(clean_labels) - set(classes))
        if unknown:
            raise NanofindInputError(f"the clean set has classes the labels do not: {unknown}", "--clean")
        clean_y = np.array([index[c] for c in clean_labels])
    start = time.perf_counter()
    fit = train_noisy(prepare_images(images, input_px), np.array([index[c] for c in labels]), len(classes),
                      settings=settings, groups=groups, progress=progress,
                      clean_images=None if clean_images is None else prepare_images(clean_images, input_px),
                      clean_labels=clean_y)
    blocks = len(settings.channels)
    architecture = (f"seed 004 Fig. 5.2a with {blocks} x (conv-ReLU-max-pool) of {list(settings.channels)} channels"
                    + (", avg-pool" if blocks < 3 else "") + ", dense, dropout, dense")
    if settings.mirror_odd:
        architecture += "; mirror-odd: logit difference body(x) - body(x with columns reversed)"
    card = {"task": TASK, "nanofind_version": __version__, "method": settings.method, "classes": classes,
            "input_px": input_px, "architecture": architecture, "mirror_odd": settings.mirror_odd,
            "networks": len(fit.networks), "channels": list(settings.channels), "hidden": settings.hidden,
            "noise_rate": fit.noise_rate, "noise_rate_source": fit.noise_rate_source,
            "training": {"items": len(labels), "per_class": {c: labels.count(c) for c in classes},
                         "clean_items": 0 if clean_labels is None else len(clean_labels),
                         "seconds": round(time.perf_counter() - start, 2), **fit.record(), **(record or {})}}
    return ImageClassifier(fit.networks, card)


def save_image_classifier(classifier: ImageClassifier, directory: str | Path) -> Path:
    """Write ``classifier.safetensors`` and ``card.json`` into ``directory`` (created)."""
    from safetensors.torch import save_file

    from nanofind.classify.model import model_folder

    directory = model_folder(directory)
    state = {f"net{k}.{name}": v.detach().contiguous() for k, net in enumerate(classifier.networks)
             for name, v in net.state_dict().items()}
    write_atomic(directory / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp)))
    write_text_atomic(directory / CARD_FILE, json.dumps(classifier.card, indent=2) + "\n")
    return directory


def load_image_classifier(directory: str | Path) -> ImageClassifier:
    """Load a directory written by :func:`save_image_classifier`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from nanofind.classify.model import read_classifier_card
    from nanofind.learn.noisy_labels import build_network

    card = read_classifier_card(directory)
    if card.get("task") != TASK:
        raise NanofindInputError(f"{directory}: a model for {card.get('task')!r}, not for {TASK!r}")
    try:
        classes, side = list(card["classes"]), int(card["input_px"])
        count, channels, hidden = int(card["networks"]), tuple(card["channels"]), int(card["hidden"])
        state = load_file(str(Path(directory) / WEIGHTS_FILE))
        networks = []
        for k in range(count):
            net = build_network(len(classes), side, channels=channels, hidden=hidden,
                                mirror_odd=bool(card.get("mirror_odd", False)))
            prefix = f"net{k}."
            net.load_state_dict({name[len(prefix):]: v for name, v in state.items() if name.startswith(prefix)})
            net.eval()
            networks.append(net)
    except (KeyError, TypeError, ValueError, RuntimeError, OSError, SafetensorError) as exc:
        raise NanofindInputError(f"{directory}: unusable classifier ({type(exc).__name__}: {exc})") from None
    return ImageClassifier(networks, card)


#: Smallest image side read for an image classifier, px.
MIN_IMAGE_PX = 8
#: Most pixels of one image read for an image classifier.
MAX_IMAGE_PIXELS = 4096 * 4096


def read_image(path: str | Path) -> np.ndarray:
    """The first frame of one image file as a 2D float32 array (one clear error when unusable)."""
    from nanofind.io.micrograph import read_micrograph

    frames = read_micrograph(Path(path), max_pixels=MAX_IMAGE_PIXELS, min_side_px=MIN_IMAGE_PX).frames()
    return np.asarray(frames[0].array, dtype=np.float32)


def train_from_labels(data: list[str], labels_table: str, out_dir, *, method: str = "relabel",
                      clean_table: str | None = None, noise_rate: float | None = None, epochs: int | None = None,
                      seed: int = 0, mirror_odd: str = "auto", rotation: str = "auto", quiet: bool = False) -> dict:
    """``nanofind classify train DATA... --labels labels.csv``: train, save, return the card.

    ``mirror_odd`` is ``auto``, ``yes`` or ``no`` (:func:`choose_mirror_odd`); ``rotation`` is
    ``auto``, ``any`` or ``quarter`` (:func:`choose_rotation`).
    """
    from dataclasses import replace

    from nanofind._progress import ProgressBar
    from nanofind.learn.noisy_labels import NoisyTrainingSettings, default_epochs

    table = read_labels(labels_table, data)
    settings = NoisyTrainingSettings(method=method, noise_rate=noise_rate, seed=seed,
                                     epochs=epochs if epochs is not None else default_epochs(len(table.files)))
    if len(table.classes) < 2:
        raise NanofindInputError(f"{labels_table}: needs at least two classes; all rows are {table.classes}")
    clean = read_labels(clean_table, data) if clean_table else None
    if method == "two-step" and clean is None:
        raise NanofindInputError("two-step training needs a clean set: --clean CLEAN.csv", "--clean")
    with ProgressBar("images", len(table.files) + (len(clean.files) if clean else 0), enabled=not quiet) as bar:
        images = []
        for path in table.files:
            images.append(read_image(path))
            bar.advance()
        clean_images = []
        for path in clean.files if clean else []:
            clean_images.append(read_image(path))
            bar.advance()
    share = mirror_pair_share(images, table.labels)  # exact mirrors: on the images as read
    mirror_odd_chosen = choose_mirror_odd(mirror_odd, images, table.labels, share=share)
    # Resized once: preparing an already prepared stack again skips the resize (same side) and only
    # re-normalises, so the orientation measure and the trainer below share this work.
    images = list(prepare_images(images, INPUT_PX))
    anisotropy = orientation_anisotropy(images) if rotation == "auto" else None
    settings = replace(settings, mirror_odd=mirror_odd_chosen,
                       rotation=choose_rotation(rotation, images, anisotropy=anisotropy))
    record = {"labels": str(labels_table), "clean": str(clean_table) if clean_table else None,
              "inputs": [str(d) for d in data], "mirror_odd_choice": mirror_odd,
              "mirror_pair_share": round(share, 4), "rotation_choice": rotation,
              "orientation_anisotropy": None if anisotropy is None else round(anisotropy, 4)}
    with ProgressBar("epochs", settings.total_epochs, enabled=not quiet) as bar:
        classifier = train_image_classifier(images, table.labels, settings=settings,
                                            clean_images=clean_images if clean else None,
                                            clean_labels=clean.labels if clean else None,
                                            groups=group_names(table.files), record=record, progress=bar.advance)
    save_image_classifier(classifier, out_dir)
    return classifier.card
