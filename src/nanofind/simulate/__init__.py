"""HRTEM image simulation: exit waves (abTEM), optics, detector and ground truth."""

from nanofind.datasets.sample import Sample
from nanofind.simulate.chiral import chiral_particle_images
from nanofind.simulate.detector import Detector, bin_image, mtf, poisson_dose
from nanofind.simulate.multislice import ExitWaves, MultisliceSettings, SubstratePotentialCache, simulate_exit_waves
from nanofind.simulate.optics import Optics, image_intensity, scherzer_defocus_A, wavelength_A
from nanofind.simulate.pipeline import simulate_group
from nanofind.simulate.recipe import SimulationRecipe, load_simulation_recipe, parse_simulation_recipe

__all__ = ["Detector", "ExitWaves", "MultisliceSettings", "Optics", "Sample", "SimulationRecipe",
           "SubstratePotentialCache", "bin_image", "chiral_particle_images", "image_intensity",
           "load_simulation_recipe", "mtf",
           "parse_simulation_recipe", "poisson_dose", "scherzer_defocus_A", "simulate_exit_waves", "simulate_group",
           "wavelength_A"]
