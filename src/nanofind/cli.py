"""The ``nanofind`` command line.

Every failure caused by the input (a bad recipe field, an unreadable or unwritable file)
prints one line naming the field or file and exits with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from nanofind._version import __version__
from nanofind.errors import NanofindInputError


def _whole_number(minimum: int, name: str = ""):
    """An argparse type: an integer >= ``minimum``; errors start with ``name`` when given."""
    prefix = f"{name} " if name else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{prefix}must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{prefix}must be >= {minimum}, got {value}")
        return value

    return parse


_seed = _whole_number(0, "seed")
_count = _whole_number(1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as for every other input error
        self.exit(2, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nanofind", description="Machine-learning analysis of HRTEM micrographs of nanoparticles.")
    parser.add_argument("--version", action="version", version=f"nanofind {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    scene = sub.add_parser("scene", help="build an atomic scene from a YAML recipe",
                           description="Build an atomic scene (particles on a substrate, with per-atom labels) "
                                       "from a YAML recipe and write it as extended XYZ.")
    scene.add_argument("recipe", help="YAML recipe (see examples/recipes)")
    scene.add_argument("-o", "--output", required=True, help="output .extxyz file")
    scene.add_argument("--seed", type=_seed, default=0, help="random seed (default 0); same recipe + seed = same atoms")
    scene.add_argument("--also", action="append", choices=["prismatic", "cif"], default=[],
                       help="also write OUTPUT with suffix .prismatic.xyz or .cif (repeatable)")
    scene.add_argument("--preview", metavar="PNG", help="also draw the scene and its ground truth to a PNG")
    scene.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    scene.set_defaults(func=_cmd_scene)

    sim = sub.add_parser("simulate", help="simulate a training dataset of HRTEM images with ground truth",
                         description="Simulate N HRTEM images (multislice, optics, detector noise) with particle "
                                     "masks, grain and column maps from a YAML simulation recipe, into HDF5.")
    sim.add_argument("recipe", help="YAML simulation recipe (see examples/recipes/default.yaml)")
    sim.add_argument("-n", type=_count, required=True, help="number of images")
    sim.add_argument("-o", "--output", required=True, help="output .h5 file")
    sim.add_argument("--seed", type=_seed, default=0, help="dataset seed (default 0); image i depends on (seed, i)")
    sim.add_argument("--resume", action="store_true", help="continue an interrupted run, or extend a finished one")
    _add_task_options(sim)
    sim.set_defaults(func=_cmd_simulate)

    ds = sub.add_parser("dataset", help="inspect or export a dataset")
    ds_sub = ds.add_subparsers(dest="dataset_command", metavar="ACTION", parser_class=_Parser, required=True)
    show = ds_sub.add_parser("show", help="summarise a dataset")
    show.add_argument("dataset", help=".h5 dataset")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_cmd_dataset_show)
    export = ds_sub.add_parser("export", help="write img_<i>.tif, mask_<i>.png and meta_<i>.json files")
    export.add_argument("dataset", help=".h5 dataset")
    export.add_argument("directory", help="output directory")
    export.set_defaults(func=_cmd_dataset_export)
    labelled = ds_sub.add_parser("from-labeled", help="tile labelled micrographs into a training dataset",
                                 description="Cut labelled micrographs into tiles (default 512x512), drop tiles "
                                             "without particles, and write a dataset in the simulation's format.")
    labelled.add_argument("images", help="folder of micrographs (any format nanofind reads)")
    labelled.add_argument("masks", help="folder of masks: same stem, mask_<id> for img_<id>, or <stem>_mask")
    labelled.add_argument("-o", "--output", required=True, help="output .h5 file")
    labelled.add_argument("--tile", type=_whole_number(64, "--tile"), default=512, help="tile side, px (default 512)")
    labelled.add_argument("--pixel-size", type=_positive_float("--pixel-size"), help="pixel size in Å")
    labelled.set_defaults(func=_cmd_dataset_from_labeled)
    mirror = ds_sub.add_parser("mirror-label", help="label particle images and their mirrors by handedness",
                               description="Label every image with the dominant hand and its left-right mirror "
                                           "with the other (seed 004, ch. 5); writes OUT/images, labels.csv, "
                                           "truth.csv and mirror_label.json.")
    mirror.add_argument("inputs", nargs="+", help="particle image files and/or folders")
    mirror.add_argument("--dominant", choices=["right", "left"], required=True, help="the dominant hand")
    mirror.add_argument("-o", "--output", required=True, help="output directory")
    mirror.add_argument("--minority-fraction", type=_fraction("--minority-fraction"), default=0.0, metavar="F",
                        help="fraction of originals mirrored first to make an ideal set with known wrong labels "
                             "(default 0)")
    mirror.add_argument("--seed", type=_seed, default=0, help="seed choosing those originals (default 0)")
    mirror.add_argument("--quiet", action="store_true", help="no progress bar")
    mirror.set_defaults(func=_cmd_dataset_mirror_label)

    tr = sub.add_parser("train", help="train or fine-tune a segmentation network",
                        description="Train a particle segmentation network on nanofind datasets (.h5) and/or folders "
                                    "of labelled micrographs (img_<id>.* + mask_<id>.png); writes safetensors weights "
                                    "and a JSON card.")
    tr.add_argument("data", nargs="+", help="nanofind .h5 datasets and/or folders of labelled micrographs")
    tr.add_argument("--arch", default="unet",
                    help="seed_unet, unet (default), unet_resnet18, unet_mobilenetv2, unet_vgg16, fpn_resnet18 or "
                         "deeplab_resnet18")
    tr.add_argument("-o", "--output", required=True, help="model directory")
    tr.add_argument("--init", metavar="MODEL", help="start from a trained model (fine-tuning); 'default' = shipped")
    tr.add_argument("--loss", choices=["ce", "dice_ce", "weighted_ce"], default="dice_ce")
    tr.add_argument("--lr", type=_positive_float("--lr"), default=1e-3, help="Adam learning rate (default 1e-3)")
    tr.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                    help="learning rate per epoch: constant (default), or a cosine decay to 5%% of --lr at --epochs")
    tr.add_argument("--epochs", type=_count, default=30, help="most epochs (default 30)")
    tr.add_argument("--steps", type=_count, default=100, help="batches per epoch (default 100)")
    tr.add_argument("--batch", type=_count, default=8, help="crops per batch (default 8)")
    tr.add_argument("--crop", type=_whole_number(32, "--crop"), default=256, help="crop side, pixels (default 256)")
    tr.add_argument("--patience", type=_count, default=4, help="epochs without a validation-loss gain of 0.001")
    tr.add_argument("--real-fraction", type=_fraction("--real-fraction"), default=None,
                    help="share of crops taken from real (folder) images; default: by area")
    tr.add_argument("--val", nargs="+", metavar="DATA", help="validation data (default: hold out part of DATA)")
    tr.add_argument("--val-fraction", type=_fraction("--val-fraction"), default=0.15,
                    help="share of each source held out for validation (default 0.15)")
    tr.add_argument("--fold", metavar="I/K", help="hold out cross-validation fold I of K (0-based) of every source: "
                         "neither trained nor validated on (validation: --val-fraction of the rest)")
    tr.add_argument("--split-seed", type=_seed, default=0, help="seed of the validation split (default 0)")
    tr.add_argument("--max-minutes", type=_positive_float("--max-minutes"), help="stop after this many minutes")
    tr.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    tr.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint")
    tr.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="auto (default): bf16 autocast where the CPU has native bf16, else fp32")
    tr.add_argument("--fp32", action="store_const", const="fp32", dest="precision", help="same as --precision fp32")
    tr.add_argument("--imaging", choices=["hrtem", "bright_field"],
                    help="the micrographs the model is for, recorded in its card (bright_field also records the "
                         "particle diameters in px it was trained on, for --model auto's resampling)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)

    seg = sub.add_parser("segment", help="segment particles in micrographs with a trained model",
                         description="Write <stem>_mask.png (0/255) and <stem>_prob.tif (float32 particle "
                                     "probability) for each micrograph (MRC, DM3/DM4, SER, EMD, TIFF, PNG, JPEG).")
    seg.add_argument("micrographs", nargs="+", help="micrograph files and/or folders")
    seg.add_argument("-o", "--output", required=True, help="output directory")
    _add_model_options(seg, tta=False)
    seg.add_argument("--window", type=_whole_number(32, "--window"), default=512, help="sliding window, px")
    seg.add_argument("--batch", type=_count, default=4, help="windows per forward pass")
    _add_parallel_options(seg)
    seg.add_argument("--quiet", action="store_true", help="no progress bar")
    seg.set_defaults(func=_cmd_segment)

    ev = sub.add_parser("evaluate", help="score a model and the classical baselines on labelled data",
                        description="Dice, IoU, precision, recall, pixel accuracy, confusion matrices, a per-image "
                                    "table and a PR curve for the model and the Otsu, Fourier-annulus and Bragg-peak "
                                    "baselines.")
    ev.add_argument("data", nargs="+", help="nanofind .h5 datasets and/or folders of labelled micrographs")
    ev.add_argument("--model", default="auto",
                    help="'auto' (default: for each image the shipped model analyze --model auto picks, at its "
                         "resampling), 'hrtem' (= 'default'), 'lowmag', or a model directory")
    ev.add_argument("-o", "--output", required=True, help="output directory")
    ev.add_argument("--fold", metavar="I/K", help="score only fold I of K of every source (as held out by train)")
    ev.add_argument("--split-seed", type=_seed, default=0, help="seed of that split (default 0, as in train)")
    ev.add_argument("--no-baselines", action="store_true", help="score the model only")
    ev.add_argument("--tta", action="store_true", help="average the model over mirror images (as segment --tta)")
    _add_engine_options(ev)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_cmd_evaluate)

    an = sub.add_parser("analyze", help="segment and measure particles in micrographs; tables, overlays, report",
                        description="Segment nanoparticles in micrographs (files or folders; MRC, DM3/DM4, SER, EMD, "
                                    "TIFF, PNG, JPEG), split touching particles, measure them, and write masks, "
                                    "particles.csv, overlays, a size histogram, summary.json and report.html.")
    an.add_argument("inputs", nargs="*", metavar="MICROGRAPH_OR_DIR", help="micrograph files and/or folders")
    an.add_argument("-o", "--output", help="output directory (default: nanofind-analysis)")
    an.add_argument("--example", action="store_true", help="analyse the bundled example micrographs")
    _add_model_options(an, tta=False)
    an.add_argument("--min-area", type=_positive_float("--min-area"), default=1.0,
                    help="smallest particle kept, nm² (default 1.0; 40 px² when the pixel size is unknown)")
    an.add_argument("--no-split", action="store_true", help="do not split touching particles")
    an.add_argument("--classifier", default="default",
                    help="defect classifier folder (nanofind classify train), or default (the shipped one)")
    an.add_argument("--no-classify", action="store_true", help="no defect classes (fault, no_fault, misoriented, ...)")
    an.add_argument("--resume", action="store_true", help="reuse files an interrupted run into OUTPUT finished")
    _add_parallel_options(an)
    an.add_argument("--quiet", action="store_true", help="no progress bar")
    an.set_defaults(func=_cmd_analyze)

    st = sub.add_parser("structure", help="classify the atoms of atomic models: fcc/hcp/… order, grains, faults",
                        description="Local structure of atomic models (nanofind scenes, tomography or MD models; any "
                                    "format ASE reads): coordination, fcc/hcp order parameters (seed 004, Eq. 2.1), a "
                                    "class per atom, grains, twin planes and stacking faults, five-fold axes. Writes "
                                    "NAME.structure.extxyz, NAME.atoms.csv, NAME.summary.json and NAME.structure.png.")
    st.add_argument("models", nargs="+", metavar="MODEL", help="atomic model files")
    st.add_argument("-o", "--output", required=True, help="output folder")
    st.add_argument("--cutoff", type=_positive_float("--cutoff"), metavar="ANGSTROM",
                    help="coordination cut-off in Å (default: 1.28 nearest-neighbour distances, 3.75 Å for Pd)")
    st.add_argument("--sublattices", choices=["auto", "always", "never"], default="auto",
                    help="analyse each element of a compound on its own sublattice: when it is not close-packed "
                         "(auto, default: CdSe and other tetrahedral compounds), always, or never")
    st.add_argument("--json", action="store_true", help="print the summaries as JSON instead of a table")
    st.add_argument("--quiet", action="store_true", help="no progress bar")
    st.set_defaults(func=_cmd_structure)

    cl = sub.add_parser("classify", help="defect classes of particle crops; train classifiers; cut training crops",
                        description="nanofind classify IMAGES... -o OUT: the defect class of each image, one region "
                                    "around one particle or one empty area (fault, no_fault, misoriented, "
                                    "agglomerate, empty), written to OUT/classes.csv. nanofind classify train DIR... "
                                    "--method rf|gbt|cnn|gbt+cnn -o MODEL_DIR: train from folders, one sub-folder "
                                    "per class; "
                                    "nanofind classify train DATA... --labels labels.csv --method standard|two-step|"
                                    "coteaching|elr|relabel -o MODEL_DIR: an image classifier of any classes from "
                                    "labels that may be wrong (seed 004, ch. 5), used by nanofind classify IMAGES "
                                    "--model DIR. "
                                    "nanofind classify crops DATASET.h5... -o DIR: labelled crops of simulated "
                                    "datasets, cut as analyze cuts particles.")
    cl.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                    help="crops or folders (or: train DIR..., crops H5...)")
    cl.add_argument("-o", "--output", required=True, help="output folder (classes.csv), or the new model folder")
    cl.add_argument("--model", default="default", help="classifier folder, or default (the shipped one)")
    cl.add_argument("--method", choices=["rf", "gbt", "cnn", "gbt+cnn", "standard", "two-step", "coteaching", "elr",
                                         "relabel"],
                    help="train: rf (seed 004's random forest: its 5 features, 500 trees, Gini), gbt (gradient-"
                         "boosted trees on the richer features; the default for class folders), cnn (a small "
                         "network on the crop and its spectrum) or gbt+cnn (both, probabilities mixed: the "
                         "shipped classifier); with --labels: standard (the seed's CNN), "
                         "two-step (a clean set first, needs --clean), coteaching (Han et al.), elr "
                         "(early-learning regularisation) or relabel (two-step, or standard without --clean, then "
                         "one round of a fresh network on its answers; the default)")
    cl.add_argument("--labels", metavar="CSV", help="train: a file,label table of the images in DATA (any class "
                                                    "names; labels may be wrong)")
    cl.add_argument("--clean", metavar="CSV", help="train --labels: a small file,label table known to be right "
                                                   "(two-step's first stage)")
    cl.add_argument("--noise-rate", type=_fraction("--noise-rate"), metavar="R",
                    help="train --labels: the fraction of wrong labels, if known (co-teaching's forget rate); "
                         "estimated otherwise")
    cl.add_argument("--epochs", type=_whole_number(1, "--epochs"),
                    help="train --labels: epochs (default: enough to see about 180 000 images, 25-200)")
    cl.add_argument("--mirror-odd", choices=["auto", "yes", "no"], default="auto",
                    help="train --labels: a network that gives an image's left-right mirror the opposite answer, "
                         "for two classes that are each other's mirror (handedness); auto (default): yes when the "
                         "images come in exact mirror pairs with opposite labels, as dataset mirror-label writes")
    cl.add_argument("--rotation", choices=["auto", "any", "quarter"], default="auto",
                    help="train --labels: in-plane turns of the augmentation: any angle, or quarter turns +-5 deg "
                         "(seed 004's); auto (default): any when the images' edges show no preferred direction "
                         "(objects at random angles), quarter otherwise (upright or axis-aligned images)")
    cl.add_argument("--classes", nargs="+", choices=["fault", "no_fault", "misoriented", "agglomerate", "empty"],
                    metavar="CLASS", help="crops: cut only crops of these classes")
    cl.add_argument("--seed", type=_seed, default=0, help="random seed of training and of the empty crops (default 0)")
    cl.add_argument("--quiet", action="store_true", help="no progress bar")
    cl.set_defaults(func=_cmd_classify)

    co = sub.add_parser("columns", help="atomic columns of micrographs: sub-pixel positions, tables, overlays, tracks",
                        description="nanofind columns IMAGES... -o OUT: every atomic column of each micrograph (each "
                                    "frame of a stack) as a row of OUT/<stem>_columns.csv: x_A, y_A (Å from the "
                                    "top-left corner of the top-left pixel, x along columns, y along rows), x_px, "
                                    "y_px, intensity, and with --method network height (atoms), element and "
                                    "confidence; stacks add frame and track_id. Also an overlay "
                                    "(<stem>_columns.png), a height map (<stem>_heights.tif, network), a summary "
                                    "figure and a JSON record.")
    co.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="micrographs or folders of them")
    co.add_argument("-o", "--output", required=True, help="output folder")
    co.add_argument("--method", default="peaks", choices=["peaks", "network"],
                    help="peaks: classical sub-pixel peak finding (no training); network: a column-height model "
                         "finds the columns and reads their heights, elements and confidences")
    co.add_argument("--model", default="default", metavar="default|DIR",
                    help="network: the shipped CeO2 [110] model (default) or a model folder "
                         "(weights.safetensors and card.json)")
    co.add_argument("--symmetric", action="store_true",
                    help="network: average the model's answers over the image's 8 quarter turns and mirrors "
                         "(8 times the time)")
    co.add_argument("--contrast", default="auto", choices=["auto", "bright", "dark"],
                    help="columns brighter (HAADF-STEM) or darker than their surroundings (HRTEM at some foci); "
                         "auto: from the image")
    co.add_argument("--refine", default="com", choices=["com", "gaussian", "none"],
                    help="sub-pixel refinement: centre of mass (fast), 2D Gaussian fit (slower), none")
    co.add_argument("--spacing", type=_positive_float("--spacing"), metavar="A",
                    help="nearest-neighbour column spacing in Å (default: measured from the image)")
    co.add_argument("--min-separation", type=_positive_float("--min-separation"), metavar="A",
                    help="closer peaks keep only the stronger, Å (default: 0.6 of the spacing)")
    co.add_argument("--threshold-sigma", type=_number("--threshold-sigma", 0, low_included=True), default=5.0,
                    help="drop peaks lower than this many noise deviations (default 5)")
    co.add_argument("--track-tolerance", type=_positive_float("--track-tolerance"), default=0.5, metavar="A",
                    help="stacks: largest move of a column between frames after drift, Å (default 0.5)")
    co.add_argument("--region", default="auto", choices=["auto", "all"],
                    help="auto: search only where the image holds a lattice of the column spacing (not in "
                         "amorphous film); all: everywhere")
    co.add_argument("--pixel-size", type=_positive_float("--pixel-size"), help="pixel size in Å (overrides files)")
    co.add_argument("--quiet", action="store_true", help="no progress bar")
    co.set_defaults(func=_cmd_columns)

    lib = sub.add_parser("library", help="build a library of simulated crystal images for structure matching",
                         description="nanofind library build SPEC.yaml -o LIBRARY.h5: prototypes (built-in "
                                     "structure types, CIF files) along every distinct zone axis, rendered as "
                                     "HAADF-STEM (convolution model) or HRTEM images (see "
                                     "examples/recipes/library-default.yaml).")
    lib_sub = lib.add_subparsers(dest="library_command", metavar="ACTION", parser_class=_Parser, required=True)
    lb = lib_sub.add_parser("build", help="build a library file from a YAML spec")
    lb.add_argument("spec", help="YAML library spec")
    lb.add_argument("-o", "--output", required=True, help="output LIBRARY.h5")
    _add_task_options(lb)
    lb.set_defaults(func=_cmd_library_build)

    ma = sub.add_parser("match", help="rank library structures for atomic-resolution images (SSIM, EMD, MSE)",
                        description="nanofind match IMAGES... --library LIBRARY.h5 -o OUT: each image's best "
                                    "library entries (prototype, formula, zone axis) after registration "
                                    "(pixel size, rotation, mirror, shift), in OUT/matches.csv with columns "
                                    "query,rank,prototype,formula,zone,ssim,emd,mse, a montage per image and, with "
                                    "--window, a map of the best entry per tile.")
    ma.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="micrographs or folders of them")
    ma.add_argument("--library", required=True, help="library file made by `nanofind library build`")
    ma.add_argument("-o", "--output", required=True, help="output folder")
    ma.add_argument("--metric", default="all", choices=["ssim", "emd", "mse", "all"],
                    help="what ranks the matches: SSIM (higher is better), EMD of the column peak sets or MSE "
                         "(lower is better), or all three (sum of their ranks; default)")
    ma.add_argument("--top", type=_whole_number(1, "--top"), default=10, help="matches per image (default 10)")
    ma.add_argument("--shortlist", type=_whole_number(1, "--shortlist"), default=16,
                    help="entries scored in full after the fast rotation-invariant pre-selection (default 16)")
    ma.add_argument("--window", type=_whole_number(64, "--window"), metavar="PX",
                    help="also match every PX-px tile (half-overlapping): a map of structural motifs")
    ma.add_argument("--pixel-size", type=_positive_float("--pixel-size"),
                    help="pixel size in Å (overrides files; without either it is fitted to each entry's lattice)")
    ma.add_argument("--quiet", action="store_true", help="no progress bar")
    ma.set_defaults(func=_cmd_match)
    return parser


def _add_task_options(parser: argparse.ArgumentParser) -> None:
    """--workers, --scheduler and --quiet of the commands that spread independent tasks (simulate, library)."""
    parser.add_argument("--workers", type=_count, default=None, help="local worker processes (default: one per core)")
    parser.add_argument("--scheduler", metavar="ADDR", help="run on a Dask distributed scheduler, e.g. tcp://host:8786")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--precision and --backend: how the network runs on this machine."""
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="auto (default): bf16 where the CPU has native bf16 (AVX-512 BF16 or AMX), else fp32")
    parser.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                        help="auto (default): PyTorch for bf16, ONNX Runtime for fp32 when installed")


def _add_model_options(parser: argparse.ArgumentParser, tta: bool) -> None:
    """Options shared by the commands that segment micrographs (model, pixel size, engine, memory)."""
    parser.add_argument("--model", default="auto",
                        help="auto (default): for each image the shipped HRTEM or low-magnification bright-field "
                             "model, by its pixel size, or when unknown by its lattice fringes, resampled to the "
                             "particles' size (see nanofind.segment.model_choice); hrtem (= default); lowmag; or a "
                             "model directory")
    parser.add_argument("--pixel-size", type=_positive_float("--pixel-size"), help="pixel size in Å (overrides files)")
    parser.add_argument("--threshold", type=_fraction("--threshold"), help="decision threshold (default: the model's)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=tta,
                        help="average the model over the image and its mirror images (test-time augmentation; "
                             f"slower, see docs/benchmarks.md; default: {'on' if tta else 'off'})")
    _add_engine_options(parser)
    parser.add_argument("--max-memory", type=_number("--max-memory", 1.0, 1e6, low_included=True), default=4.0,
                        metavar="GB", help="peak memory to stay within, GB (1 or more; default 4): larger images "
                                           "are refused, and resampling is bounded to fit")


def _add_parallel_options(parser: argparse.ArgumentParser) -> None:
    """--workers and --scheduler of the commands that segment micrographs (one file per task)."""
    parser.add_argument("--workers", type=_whole_number(1, "--workers"), default=1, metavar="N",
                        help="local worker processes, each with its share of the CPUs and 1/N of --max-memory "
                             "(default 1: one process, the network using every core)")
    parser.add_argument("--scheduler", metavar="ADDR",
                        help="run on a Dask distributed scheduler, e.g. tcp://host:8786 (the micrographs and the "
                             "output directory must be on a file system its workers share; each task may use "
                             "--max-memory)")


def _number(name: str, low: float, high: float = float("inf"), low_included: bool = False):
    """An argparse type: a number in (low, high], or [low, high] when ``low_included``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not ((value >= low) if low_included else (value > low)) or not value <= high:
            bounds = f"between {low:g} and {high:g}" if high < float("inf") else f"> {low:g}"
            raise argparse.ArgumentTypeError(f"{name} must be {bounds}, got {value}")
        return value

    return parse


def _positive_float(name: str):
    return _number(name, 0.0)


def _fraction(name: str):
    return _number(name, 0.0, 1.0, low_included=True)


def _load_items(paths, keep_raw=False):
    """The labelled images of each data path, one list per path."""
    from nanofind.learn.data import load_source

    return [load_source(p, keep_raw) for p in paths]


def _parse_fold(text: str) -> tuple[int, int]:
    try:
        fold, folds = (int(x) for x in text.split("/"))
        if not 0 <= fold < folds:
            raise ValueError
    except ValueError:
        raise NanofindInputError(f"must be I/K with 0 <= I < K, got {text!r}", "--fold") from None
    return fold, folds


def _cmd_train(args: argparse.Namespace) -> int:
    from nanofind.learn.data import split
    from nanofind.learn.train import TrainConfig, train

    held_out = _parse_fold(args.fold) if args.fold else None
    train_items, val_items = [], []
    for items in _load_items(args.data):
        if held_out:  # the held-out fold is neither trained nor validated on: it stays for `evaluate --fold`
            items = split(items, held_out, args.split_seed)[0]
        if args.val:
            train_items += items
        else:
            t, v = split(items, args.val_fraction, args.split_seed)
            train_items += t
            val_items += v
    if args.val:
        val_items = [x for items in _load_items(args.val) for x in items]
    config = TrainConfig(architecture=args.arch, loss=args.loss, learning_rate=args.lr,
                         lr_schedule=args.lr_schedule, batch_size=args.batch,
                         crop_px=args.crop, max_epochs=args.epochs, steps_per_epoch=args.steps,
                         patience=args.patience, seed=args.seed, real_fraction=args.real_fraction,
                         max_minutes=args.max_minutes, precision=args.precision, init=args.init,
                         imaging=args.imaging)
    card = train(config, train_items, val_items, args.output, resume=args.resume, progress=not args.quiet,
                 sources=[str(p) for p in args.data],
                 split={"validation": args.val or args.val_fraction, "split_seed": args.split_seed,
                        **({"held_out_fold": args.fold} if args.fold else {})})
    m = card.metrics["validation_at_threshold"]
    print(f"model written to {args.output}: {card.architecture}, {card.training.epochs} epochs "
          f"({card.training.stopped}), threshold {card.threshold}, validation Dice {m['dice']:.4f} "
          f"IoU {m['iou']:.4f}", file=sys.stderr)
    return 0


def _cmd_segment(args: argparse.Namespace) -> int:
    from nanofind.segment.batch import ModelChoice
    from nanofind.segment.files import segment_files

    def report(result) -> None:
        if result.error is not None:
            print(f"nanofind: error: {result.error}", file=sys.stderr)
            return
        for frame in result.frames:
            for warning in frame["warnings"]:
                print(f"nanofind: warning: {result.path}: {warning}", file=sys.stderr)
            if not args.quiet:
                choice = frame.get("model") or {}
                zoom = f" at {choice['wanted_zoom']:.3g}x" if choice.get("wanted_zoom") not in (None, 1.0) else ""
                print(f"{result.path}: {frame['width_px']}x{frame['height_px']} px, model {choice.get('model')}{zoom}, "
                      f"particles {frame['particle_fraction'] * 100:.1f}% of the field, {frame['seconds']:.1f} s -> "
                      f"{frame['mask_png']}", file=sys.stderr)

    run = segment_files(args.micrographs, args.output,
                        model=ModelChoice(args.model, args.precision, args.backend, warm_up_px=args.window),
                        threshold=args.threshold, pixel_size_A=args.pixel_size, window_px=args.window,
                        batch=args.batch, tta=args.tta, max_memory_gb=args.max_memory, workers=args.workers,
                        scheduler=args.scheduler, on_file=report,
                        on_start=None if args.quiet else lambda line: print(f"nanofind: {line}", file=sys.stderr))
    if run.failed:
        print(f"nanofind: {len(run.failed)} of {len(run.results)} files failed: "
              f"{', '.join(str(r.path) for r in run.failed)}", file=sys.stderr)
        return 1
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from nanofind.analyze.measure import CleaningSettings
    from nanofind.analyze.pipeline import EXAMPLES_DIR, AnalysisSettings, analyze_batch

    inputs = list(args.inputs) + ([str(EXAMPLES_DIR)] if args.example else [])
    if not inputs:
        raise NanofindInputError("name micrographs or folders, or use --example", "MICROGRAPH_OR_DIR")
    output = args.output or "nanofind-analysis"
    cleaning = replace(CleaningSettings(), min_area_nm2=args.min_area, split=not args.no_split)
    settings = AnalysisSettings(model=args.model, threshold=args.threshold, pixel_size_A=args.pixel_size,
                                tta=args.tta, precision=args.precision, backend=args.backend,
                                max_memory_gb=args.max_memory, cleaning=cleaning, classify=not args.no_classify,
                                classifier=args.classifier)
    if settings.classify:  # an unusable classifier is one clear error now, not one per image later
        from nanofind._parallel import cached_in_process
        from nanofind.classify.model import load_classifier

        # kept where the images of a one-process run will look for it, so it is loaded once
        cached_in_process("defect_classifier", settings.classifier, lambda: load_classifier(settings.classifier))
    summary = analyze_batch(inputs, output, settings, progress=not args.quiet, resume=args.resume,
                            workers=args.workers, scheduler=args.scheduler)
    sizes = summary["size_distribution"]
    size = f", mean equivalent diameter {sizes['mean']:.2f} {sizes['unit']}" if "mean" in sizes else ""
    print(f"{summary['particles']} particles in {summary['images']} images{size}; "
          f"report: {Path(output) / 'report.html'}", file=sys.stderr)
    defects = summary.get("defect_classes") or {}
    if defects.get("faulted_fraction_on_axis"):
        on, faulted = defects["on_zone_axis_fraction"], defects["faulted_fraction_on_axis"]
        print(f"defect classes: {on['value']:.0%} on a zone axis (95 % CI {on['ci95'][0]:.0%}-{on['ci95'][1]:.0%}), "
              f"{faulted['value']:.0%} of those faulted ({faulted['ci95'][0]:.0%}-{faulted['ci95'][1]:.0%})",
              file=sys.stderr)
    if len(summary.get("models", {})) > 1 or args.model == "auto":
        print("models: " + ", ".join(f"{name} {m['images']} image{'' if m['images'] == 1 else 's'}"
                                     for name, m in summary.get("models", {}).items()), file=sys.stderr)
    for w in summary["warnings"]:
        frame = "" if w["frame"] is None else f" frame {w['frame']}"
        print(f"nanofind: warning: {w['file']}{frame}: {w['warning']}", file=sys.stderr)
    for f in summary["failed"]:
        print(f"nanofind: failed: {f['error']}", file=sys.stderr)
    if summary["failed"]:
        print(f"nanofind: {len(summary['failed'])} of {summary['files']} files failed (listed in summary.json)",
              file=sys.stderr)
        return 1
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nanofind.learn.data import split
    from nanofind.learn.engine import load_runner
    from nanofind.segment.evaluate import ShippedChoice, evaluate

    if args.model == "auto":
        runner, card = ShippedChoice(args.precision, args.backend), None
    else:
        runner, card = load_runner(args.model, args.precision, args.backend)

    items = []
    for batch in _load_items(args.data, keep_raw=True):
        items += split(batch, _parse_fold(args.fold), args.split_seed)[1] if args.fold else batch
    summary = evaluate(runner, card, items, args.output, baselines=not args.no_baselines, progress=not args.quiet,
                       tta=args.tta)
    print(f"{'method':10s} {'Dice':>7s} {'IoU':>7s} {'prec.':>7s} {'recall':>7s} {'acc.':>7s}   particles: "
          f"{'prec.':>6s} {'recall':>6s} {'F1':>6s} {'count err.':>10s}")
    for name, m in summary["methods"].items():
        p = m["particles"]
        print(f"{name:10s} {m['dice']:7.4f} {m['iou']:7.4f} {m['precision']:7.4f} {m['recall']:7.4f} "
              f"{m['pixel_accuracy']:7.4f}              {p['precision']:6.3f} {p['recall']:6.3f} {p['f1']:6.3f} "
              f"{p['count_error_per_field']:10.2f}")
    for breakdown, classes in summary.get("model_particle_recall_by", {}).items():
        known = {name: c for name, c in classes.items() if name != "unknown"}
        if known:
            print(f"model particle recall by {breakdown}: " + "; ".join(
                f"{name} {c['found']}/{c['true']}" for name, c in known.items()))
    print(f"details in {args.output}/summary.json, per_image.csv, pr_curve.png", file=sys.stderr)
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from nanofind.datasets.generate import generate_dataset
    from nanofind.simulate.recipe import load_simulation_recipe

    _, raw = load_simulation_recipe(args.recipe)
    report = generate_dataset(raw, str(args.recipe), args.n, args.output, args.seed, workers=args.workers,
                              resume=args.resume, scheduler=args.scheduler, progress=not args.quiet)
    rate = report.made / report.seconds if report.seconds > 0 else float("inf")
    print(f"{report.n_samples} images in {report.path} ({report.made} made, {report.reused} kept) "
          f"in {report.seconds:.1f} s, {rate:.2f} images/s", file=sys.stderr)
    return 0


def _cmd_dataset_show(args: argparse.Namespace) -> int:
    from nanofind.datasets.export import describe_dataset

    info = describe_dataset(args.dataset)
    if args.json:
        print(json.dumps(info, indent=1, ensure_ascii=False))
        return 0
    for key, value in info.items():
        print(f"{key:24s} {value}")
    return 0


def _cmd_dataset_export(args: argparse.Namespace) -> int:
    from nanofind.datasets.export import export_dataset

    n = export_dataset(args.dataset, args.directory)
    print(f"{n} samples exported to {args.directory}", file=sys.stderr)
    return 0


def _cmd_dataset_from_labeled(args: argparse.Namespace) -> int:
    from nanofind.datasets.labelled import from_labelled

    r = from_labelled(args.images, args.masks, args.output, tile=args.tile, pixel_size_A=args.pixel_size)
    print(f"{r['tiles']} tiles from {r['images']} micrographs in {r['path']} ({r['dropped_empty']} empty tiles "
          f"dropped)", file=sys.stderr)
    return 0


def _cmd_dataset_mirror_label(args: argparse.Namespace) -> int:
    from nanofind._progress import ProgressBar
    from nanofind.datasets.mirror_label import write_mirror_labelled
    from nanofind.segment.batch import expand_inputs

    files = expand_inputs(args.inputs)
    with ProgressBar("mirror-label", len(files), enabled=not args.quiet) as bar:
        r = write_mirror_labelled(files or args.inputs, args.output, dominant=args.dominant,
                                  minority_fraction=args.minority_fraction, seed=args.seed, progress=bar.advance)
    for message in r["skipped"]:
        print(f"nanofind: error: {message}", file=sys.stderr)
    print(f"{r['items']} items from {r['originals']} images in {r['path']} ({r['wrong']} wrong labels, "
          f"{len(r['skipped'])} files skipped)", file=sys.stderr)
    return 1 if r["skipped"] else 0


def _extra_path(output: Path, kind: str) -> Path:
    stem = output.name.removesuffix(".extxyz").removesuffix(".xyz")
    return output.with_name(stem + (".prismatic.xyz" if kind == "prismatic" else ".cif"))


def _cmd_structure(args: argparse.Namespace) -> int:
    from nanofind.structure.command import run_structure

    summaries, failures = run_structure(args.models, args.output, cutoff_A=args.cutoff, sublattices=args.sublattices,
                                        quiet=args.quiet or args.json,
                                        report=lambda line: print(line, file=sys.stderr))
    if args.json:
        print(json.dumps(summaries, indent=2))
    elif summaries:
        _print_structure_table(summaries)
    if failures:
        if len(args.models) == 1:
            return 2
        print(f"nanofind: {len(failures)} of {len(args.models)} models failed", file=sys.stderr)
        return 1
    return 0


def _print_structure_table(summaries: list[dict]) -> None:
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    table = Table(title="local structure (seed 004, Eq. 2.1)")
    for col in ("model", "atoms", "fcc %", "hcp %", "grains", "twins", "faults", "5-fold", "particles"):
        table.add_column(col, justify="left" if col in ("model", "particles") else "right")
    for s in summaries:
        faults = sum(v for k, v in s["planar_defects"].items() if k != "twin")
        types = Counter(p["type"] for p in s["per_particle"])
        table.add_row(Path(s["model"]["path"]).name, str(s["analysed_atoms"]),
                      f"{100 * s['classes'].get('fcc', {}).get('fraction', 0):.1f}",
                      f"{100 * s['classes'].get('hcp', {}).get('fraction', 0):.1f}", str(s["grains"]),
                      str(s["twin_planes"]), str(faults), str(s["fivefold_axes"]),
                      ", ".join(f"{n} {t}" for t, n in types.items()))
    console = Console()
    console.print(table)
    speed = sum(s["analysed_atoms"] for s in summaries) / max(sum(s["seconds"] for s in summaries), 1e-9)
    console.print(f"{speed:,.0f} atoms/s; per-atom results, summaries and figures in "
                  f"{Path(summaries[0]['outputs']['summary']).parent}")


def _cmd_classify(args: argparse.Namespace) -> int:
    action, rest = args.inputs[0], args.inputs[1:]
    if action in ("train", "crops") and not rest:
        raise NanofindInputError(f"classify {action} needs at least one input")
    if action == "train" and args.labels:
        from nanofind.classify.image_classifier import train_from_labels

        method = args.method or "relabel"
        if method in ("rf", "gbt", "cnn", "gbt+cnn"):
            raise NanofindInputError(f"with --labels the method is standard, two-step, coteaching, elr or relabel, "
                                     f"got {method}", "--method")
        card = train_from_labels(rest, args.labels, args.output, method=method, clean_table=args.clean,
                                 noise_rate=args.noise_rate, epochs=args.epochs, seed=args.seed,
                                 mirror_odd=args.mirror_odd, rotation=args.rotation, quiet=args.quiet)
        rate = card["noise_rate"]
        noise = f"; noise rate {rate:.3f} ({card['noise_rate_source']})" if rate is not None else ""
        network = ", mirror-odd network" if card.get("mirror_odd") else ""
        turns = card["training"]["settings"]["rotation"]
        network += ", turns by any angle" if turns == "any" else ", quarter turns"
        restarts = card["training"].get("restarts", 0)
        network += f", {restarts} dead network(s) trained again" if restarts else ""
        print(f"{card['training']['items']} images {card['training']['per_class']}, {method}{network}{noise} -> "
              f"{args.output}")
        return 0
    if action == "train":
        from nanofind.classify.training import train_from_folders

        method = args.method or "gbt"
        if method not in ("rf", "gbt", "cnn", "gbt+cnn"):
            raise NanofindInputError(f"{method} trains from a labels table: add --labels CSV", "--method")
        card = train_from_folders(rest, args.output, method=method, seed=args.seed, quiet=args.quiet)
        cv = card["training"].get("cross_validation") or {}
        scored = (f"{cv['folds']}-fold balanced accuracy {cv['balanced_accuracy']:.3f}"
                  + (" (the trees alone)" if method == "gbt+cnn" else "") if cv else "not cross-validated")
        print(f"{card['training']['crops']} crops {card['training']['per_class']}; {scored} -> {args.output}")
        return 0
    if action == "crops":
        from nanofind._progress import ProgressBar
        from nanofind.classify.training_data import write_crops
        from nanofind.datasets.store import DatasetReader

        total = sum(len(DatasetReader(p)) for p in rest)
        with ProgressBar("crops", total, enabled=not args.quiet) as bar:
            counts = write_crops(rest, args.output, seed=args.seed, progress=bar.advance, classes=args.classes)
        print(f"{sum(counts.values())} crops {counts} -> {args.output}")
        return 0
    from nanofind.classify.command import classify_files

    target, failures = classify_files(args.inputs, args.output, model=args.model, quiet=args.quiet,
                                      report=lambda line: print(line, file=sys.stderr))
    print(f"classes -> {target}")
    if failures:
        return 2 if len(args.inputs) == 1 and Path(args.inputs[0]).is_file() else 1
    return 0


def _cmd_columns(args: argparse.Namespace) -> int:
    from nanofind.columns.command import ColumnSettings, columns_files

    settings = ColumnSettings(method=args.method, model=args.model, symmetric=args.symmetric, contrast=args.contrast,
                              refine=args.refine, spacing_A=args.spacing, min_separation_A=args.min_separation,
                              threshold_sigma=args.threshold_sigma, track_tolerance_A=args.track_tolerance,
                              region=args.region)

    def describe(record) -> str:
        counts = record["columns_per_frame"]
        frames = f" in {len(counts)} frames ({record['tracks']} tracks)" if len(counts) > 1 else ""
        how = "by the height model" if record["contrast"] == "network" else f"{record['contrast']} contrast"
        return f"{sum(counts)} columns{frames}, spacing {record['spacing_A']:.2f} A, {how}"

    records, failures = columns_files(args.inputs, args.output, settings, pixel_size_A=args.pixel_size,
                                      on_file=_file_reporter(describe, args.quiet), quiet=args.quiet)
    print(f"{sum(sum(r['columns_per_frame']) for r in records)} columns in {len(records)} files -> {args.output}")
    return _batch_status(records, failures)


def _file_reporter(describe, quiet: bool):
    """``on_file`` of the per-file commands: errors always, ``describe(record)`` unless quiet."""
    def report(path, record, error) -> None:
        if error is not None:
            print(f"nanofind: error: {error}", file=sys.stderr)
        elif not quiet:
            again = ", done before" if record.get("resumed") else f", {record['seconds']:.2f} s"
            print(f"{path}: {describe(record)}{again}", file=sys.stderr)

    return report


def _batch_status(records: list, failures: list) -> int:
    """Exit status of a batch: 1 (and a line) when some files failed, else 0."""
    if failures:
        print(f"nanofind: {len(failures)} of {len(records) + len(failures)} files failed", file=sys.stderr)
        return 1
    return 0


def _cmd_library_build(args: argparse.Namespace) -> int:
    from nanofind.library.command import build_command

    summary = build_command(args.spec, args.output, workers=args.workers, scheduler=args.scheduler,
                            quiet=args.quiet)
    print(f"{summary['entries']} entries ({len(summary['structure_types'])} structure types, "
          f"{summary['prototypes']} materials, {summary['renderer']}) in {summary['seconds']:.1f} s -> "
          f"{summary['output']}")
    return 0


def _cmd_match(args: argparse.Namespace) -> int:
    from nanofind.library.command import MatchSettings, match_files

    settings = MatchSettings(library=args.library, metric=args.metric, top=args.top, shortlist=args.shortlist,
                             window_px=args.window)

    def describe(record) -> str:
        best = record["matches"][0]
        text = f"{best['prototype']} {best['formula']} {best['zone']} (SSIM {best['ssim']:.3f})"
        return f"no convincing match; best {text}" if record.get("convincing") is False else text

    records, failures = match_files(args.inputs, args.output, settings, pixel_size_A=args.pixel_size,
                                    on_file=_file_reporter(describe, args.quiet), quiet=args.quiet)
    print(f"{len(records)} images matched against {settings.library} -> {args.output}/matches.csv")
    return _batch_status(records, failures)


def _cmd_scene(args: argparse.Namespace) -> int:
    from nanofind.scene.build import build_scene
    from nanofind.scene.io import check_writable, write_cif, write_extxyz, write_prismatic
    from nanofind.scene.recipe import load_recipe
    from nanofind.scene.summary import summarize_scene

    output = Path(args.output)
    if output.suffix not in (".extxyz", ".xyz"):
        raise NanofindInputError(f"{output}: output must end in .extxyz (or .xyz)")
    if output.name.endswith(".prismatic.xyz"):
        raise NanofindInputError(f"{output}: the main output is extended XYZ; use --also prismatic for Prismatic")
    check_writable(output)
    extras = {kind: check_writable(_extra_path(output, kind)) for kind in dict.fromkeys(args.also)}
    if args.preview:
        if not args.preview.lower().endswith(".png"):
            raise NanofindInputError(f"{args.preview}: --preview must name a .png file")
        extras["preview"] = check_writable(args.preview)
    recipe = load_recipe(args.recipe)
    start = time.perf_counter()
    try:
        atoms, _ = build_scene(recipe, args.seed, recipe_path=args.recipe)
    except NanofindInputError as err:  # say which recipe the field belongs to
        raise NanofindInputError(f"{args.recipe}: {err}") from None
    elapsed = time.perf_counter() - start
    write_extxyz(output, atoms)
    for kind, path in extras.items():
        if kind == "prismatic":
            write_prismatic(path, atoms, comment=f"nanofind {__version__} {args.recipe} seed={args.seed}")
        elif kind == "cif":
            write_cif(path, atoms)
        else:
            from nanofind.scene.preview import render_preview

            render_preview(atoms, path, title=f"{Path(args.recipe).name}, seed {args.seed}")
    summary = summarize_scene(atoms)
    summary.update({"recipe": str(args.recipe), "seed": args.seed, "output": str(output),
                    "build_seconds": round(elapsed, 3), "also": [str(p) for p in extras.values()]})
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{summary['recipe']} (seed {summary['seed']})")
    for col in ("object", "atoms", "elements", "grains", "defect atoms"):
        table.add_column(col, justify="left" if col in ("object", "elements") else "right")
    for o in summary["objects"]:
        elements = ", ".join(f"{k} {v}" for k, v in o["elements"].items())
        table.add_row(o["name"], str(o["atoms"]), elements, str(o["grains"]), str(o["defect_atoms"]))
    console.print(table)
    dists = ", ".join(f"{k} {v:.3f}" for k, v in summary["min_distance_A"].items() if v != float("inf"))
    console.print(f"minimum distances (Å): {dists}")
    cell = " x ".join(f"{v:.1f}" for v in summary["cell_A"])
    console.print(f"{summary['atoms']} atoms in a {cell} Å cell, built in {summary['build_seconds']:.3f} s "
                  f"-> {summary['output']}" + "".join(f", {p}" for p in summary["also"]))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nanofind`` command; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NanofindInputError as exc:
        print(f"nanofind: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nanofind: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # no traceback for users; NANOFIND_DEBUG=1 shows it
        if os.environ.get("NANOFIND_DEBUG"):
            raise
        print(f"nanofind: internal error: {type(exc).__name__}: {exc} (set NANOFIND_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
