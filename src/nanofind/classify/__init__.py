"""Defect classes of segmented particles (seed 004, ch. 3): fault, no_fault, misoriented, agglomerate, empty.

Crops are cut the one way ``nanofind analyze`` cuts particles (:mod:`nanofind.classify.crops`);
features (:mod:`nanofind.classify.features`) feed seed 004's random forest or gradient-boosted trees
(:mod:`nanofind.classify.model`), trained on crops of simulated micrographs whose labels come from
the particle records and the atoms (:mod:`nanofind.classify.training_data`, ``nanofind classify
crops``/``train``); :mod:`nanofind.classify.population` gives analyze's per-particle columns and the
population statistics.
"""

from nanofind.classify.classes import CLASS_NAMES, particle_class
from nanofind.classify.crops import region_crops
from nanofind.classify.features import rich_features, seed_features
from nanofind.classify.model import DefectClassifier, load_classifier, save_classifier, train_classifier
from nanofind.classify.population import population_statistics

__all__ = ["CLASS_NAMES", "DefectClassifier", "load_classifier", "particle_class", "population_statistics",
           "region_crops", "rich_features", "save_classifier", "seed_features", "train_classifier"]
