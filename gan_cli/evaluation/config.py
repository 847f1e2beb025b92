"""Builds the evaluator and the training callback from a `metrics` config node (conf/metrics/*.yaml)."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from gan_cli.errors import UserError
from gan_cli.evaluation.callback import QualityMetrics
from gan_cli.evaluation.evaluator import Evaluator
from gan_cli.metrics.features import as_feature_network

#: keys of the metrics node that are not Evaluator arguments
NOT_EVALUATOR = ("feature_net", "classifier", "weights_path", "classifier_ckpt", "every_n_epochs")


def build_evaluator(metrics: DictConfig) -> Evaluator:
    feature_net = _instantiate(metrics.get("feature_net"))
    classifier = _instantiate(metrics.get("classifier"))
    settings = {k: v for k, v in metrics.items() if k not in NOT_EVALUATOR}
    return Evaluator(feature_net, classifier, **settings)


def feature_network(metrics: DictConfig):
    """The metrics' feature network alone (gan-eval on folders)."""
    network = _instantiate(metrics.get("feature_net"))
    if network is None:
        raise UserError("metrics.feature_net is not set: name the network whose features the scores use "
                        "(metrics=inception, metrics=digits, or a _target_).")
    return as_feature_network(network)


def _instantiate(node: DictConfig | None):
    """Instantiate a network node; a UserError raised while building it is shown as it is."""
    if not node:
        return None
    try:
        return instantiate(node)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def build_callback(metrics: DictConfig) -> QualityMetrics:
    return QualityMetrics(build_evaluator(metrics), every_n_epochs=metrics.every_n_epochs)
