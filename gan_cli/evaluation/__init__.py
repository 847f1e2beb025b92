"""Evaluating a model with the scores that fit what it can do: the evaluator (gan-eval and the training
callback), the callback, and building both from a `metrics=` config."""

from gan_cli.evaluation.callback import QualityMetrics
from gan_cli.evaluation.config import build_callback, build_evaluator
from gan_cli.evaluation.evaluator import Evaluator

__all__ = ["Evaluator", "QualityMetrics", "build_callback", "build_evaluator"]
