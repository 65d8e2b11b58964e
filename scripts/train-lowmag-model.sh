#!/bin/sh
# Rebuilds nanofind's shipped low-magnification bright-field model from scratch (docs/lowmag-model.md).
# About 27 minutes on 2 CPU cores (plus 10 per further cross-validation fold); a GPU is not needed. Usage:
#   scripts/train-lowmag-model.sh REAL_DIR [WORK_DIR] [FOLDS]
# REAL_DIR holds the 20 labelled real micrographs (img_NNN.png + mask_NNN.png), e.g.
# ../shared/data/real-tem-np/train. Stage A never sees them, so each fold of stage B is a clean
# cross-validation: FOLDS (default "0") lists the folds of 5 to hold out; fold 0's model is shipped.
set -eu
REAL=${1:?usage: scripts/train-lowmag-model.sh REAL_DIR [WORK_DIR] [FOLDS]}
WORK=${2:-lowmag-model-build}
FOLDS=${3:-0}
NF=${NANOFIND:-.venv/bin/nanofind}
mkdir -p "$WORK"

# 1. simulated bright-field fields (amplitude-contrast image model): 1200 for stage A, 300 more for stage B
$NF simulate examples/recipes/lowmag-train.yaml -n 1200 -o "$WORK/train.h5" --seed 1 --resume
$NF simulate examples/recipes/lowmag-train.yaml -n 300 -o "$WORK/train-s2.h5" --seed 2 --resume

# 2. stage A: simulated fields only, from scratch (5% held out for validation)
$NF train "$WORK/train.h5" --arch unet --loss dice_ce --lr 1e-3 --lr-schedule cosine --epochs 30 --steps 50 \
    --batch 8 --crop 256 --patience 30 --val-fraction 0.05 --seed 0 --imaging bright_field \
    -o "$WORK/stageA" --resume

# 3. stage B, per fold: the real images (fold K of 5 held out) and copies of the other folds at other
#    magnifications (0.2-2.2x), 60% of the crops, with a replay of simulated ones
for K in $FOLDS; do
    ${PYTHON:-.venv/bin/python} scripts/real-multiscale.py "$REAL" "$WORK/real-ms-f$K" --fold "$K/5"
    $NF train "$WORK/train-s2.h5" "$REAL" "$WORK/real-ms-f$K" --init "$WORK/stageA" --loss dice_ce --lr 3e-4 \
        --lr-schedule cosine --epochs 12 --steps 40 --batch 8 --crop 256 --patience 12 --real-fraction 0.6 \
        --fold "$K/5" --seed 1 --imaging bright_field -o "$WORK/fold$K" --resume
    # 4. stage C: mostly real crops (90 %), a tenth of the learning rate, to learn where people draw outlines
    $NF train "$WORK/train-s2.h5" "$REAL" "$WORK/real-ms-f$K" --init "$WORK/fold$K" --loss dice_ce --lr 1e-4 \
        --lr-schedule cosine --epochs 6 --steps 40 --batch 8 --crop 256 --patience 6 --real-fraction 0.9 \
        --fold "$K/5" --seed 2 --imaging bright_field -o "$WORK/stageC-fold$K" --resume
    $NF evaluate "$REAL" --fold "$K/5" --model "$WORK/stageC-fold$K" -o "$WORK/eval-fold$K" --quiet
done
echo "model: $WORK/stageC-fold0 (copy model.safetensors and card.json into src/nanofind/learn/lowmag_model/)"
