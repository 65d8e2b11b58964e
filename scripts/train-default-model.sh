#!/bin/sh
# Rebuilds nanofind's shipped segmentation model from scratch (docs/default-model.md).
# About 40 minutes on 2 CPU cores; a GPU is not needed. Usage:
#   scripts/train-default-model.sh REAL_DIR [WORK_DIR]
# REAL_DIR holds the 20 labelled real micrographs (img_NNN.png + mask_NNN.png), e.g.
# ../shared/data/real-tem-np/train. Fold 0 of 5 of them is held out for validation and testing.
set -eu
REAL=${1:?usage: scripts/train-default-model.sh REAL_DIR [WORK_DIR]}
WORK=${2:-default-model-build}
NF=${NANOFIND:-.venv/bin/nanofind}
mkdir -p "$WORK"

# 1. 2 x 520 simulated 320² fields (fast phase-object mode) over the operating envelope, seeds 1 and 2
$NF simulate examples/recipes/segmentation-train.yaml -n 520 -o "$WORK/train.h5" --seed 1 --resume
$NF simulate examples/recipes/segmentation-train.yaml -n 520 -o "$WORK/train-s2.h5" --seed 2 --resume

# 2. train on simulated and real images together (35% of crops real), real fold 0/5 held out;
#    a cosine learning-rate decay over all 110 epochs, the best validation epoch kept
$NF train "$WORK/train.h5" "$WORK/train-s2.h5" "$REAL" --arch unet --loss dice_ce --lr-schedule cosine \
    --epochs 110 --steps 60 --batch 8 --crop 256 --patience 110 --real-fraction 0.35 --fold 0/5 --seed 0 \
    -o "$WORK/stage1" --resume

# 3. fine-tune on the real images with a replay of simulated ones (60% of crops real)
$NF train "$WORK/train.h5" "$WORK/train-s2.h5" "$REAL" --init "$WORK/stage1" --loss dice_ce --lr 2e-4 \
    --lr-schedule cosine --epochs 12 --steps 40 --batch 8 --crop 256 --patience 12 --real-fraction 0.6 \
    --fold 0/5 --seed 1 -o "$WORK/stage2" --resume

# 4. the held-out test: simulated fields in full multislice with an unseen seed, and the held-out real fold
$NF simulate examples/recipes/segmentation-test.yaml -n 32 -o "$WORK/test-ms.h5" --seed 3 --resume
echo "model: $WORK/stage2 (copy model.safetensors and card.json into src/nanofind/learn/default_model/)"
