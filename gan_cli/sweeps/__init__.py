"""Sweeps: each job's result and the sweep's summary (a Hydra callback), and ranks for submitit's local launcher."""
