"""Sample-quality metrics: feature networks, torchmetrics scores, the training callback and gan-eval."""

from gan_cli.metrics.callback import QualityMetrics
from gan_cli.metrics.config import build_callback, build_evaluator
from gan_cli.metrics.evaluator import Evaluator

__all__ = ["Evaluator", "QualityMetrics", "build_callback", "build_evaluator"]
