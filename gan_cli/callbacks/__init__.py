"""Lightning callbacks that are not in Lightning: sample grids, mode coverage of 2-D data and the RNG state for exact resume."""

from gan_cli.callbacks.checkpoints import LastCheckpoint
from gan_cli.callbacks.mode_coverage import ModeCoverage
from gan_cli.callbacks.preemption import Preemption
from gan_cli.callbacks.rng_state import RNGState
from gan_cli.callbacks.sample_grid import SampleGrid

__all__ = ["LastCheckpoint", "ModeCoverage", "Preemption", "RNGState", "SampleGrid"]
