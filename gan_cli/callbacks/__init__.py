"""Lightning callbacks that are not in Lightning: sample grids and the RNG state for exact resume."""

from gan_cli.callbacks.rng_state import RNGState
from gan_cli.callbacks.sample_grid import SampleGrid

__all__ = ["RNGState", "SampleGrid"]
