"""The ranges of numeric settings, as type hints: a constructor argument annotated `PositiveInt` (for example)
is checked by gan_cli.config.schemas before anything is built, for every config node that builds it, so a bad
value is refused with its key, the value and the range rather than failing somewhere in training.

Third-party callables the configs build (torch's optimizers, Lightning's Trainer) have no such hints; their
ranges are written here as hints in THIRD_PARTY, keyed by the target the configs name.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from annotated_types import Ge, Gt, Interval, Le, Lt

PositiveInt = Annotated[int, Gt(0)]
NonNegativeInt = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]
NonNegativeFloat = Annotated[float, Ge(0)]
#: a share or a probability
UnitFloat = Annotated[float, Interval(ge=0, le=1)]
#: a moving average's or a momentum's decay, or an Adam beta
Decay = Annotated[float, Interval(ge=0, lt=1)]
#: Lightning's epoch and step limits: a number of at least 1, or -1 for no limit
Limit = Annotated[int, Ge(-1)]

_ADAM = {"lr": PositiveFloat, "betas": list[Decay], "eps": PositiveFloat, "weight_decay": NonNegativeFloat}
THIRD_PARTY: dict[str, dict[str, Any]] = {
    "torch.optim.Adam": _ADAM,
    "torch.optim.AdamW": _ADAM,
    "torch.optim.SGD": {"lr": PositiveFloat, "momentum": NonNegativeFloat, "weight_decay": NonNegativeFloat},
    "torch.optim.RMSprop": {"lr": PositiveFloat, "alpha": Decay, "eps": PositiveFloat, "momentum": NonNegativeFloat,
                            "weight_decay": NonNegativeFloat},
    "pytorch_lightning.Trainer": {
        "max_epochs": Optional[Annotated[int, Ge(-1)]], "min_epochs": Optional[NonNegativeInt],
        "max_steps": Limit, "log_every_n_steps": Optional[NonNegativeInt],
        "check_val_every_n_epoch": Optional[PositiveInt], "accumulate_grad_batches": PositiveInt,
        "num_nodes": PositiveInt, "reload_dataloaders_every_n_epochs": NonNegativeInt,
    },
}
THIRD_PARTY["pytorch_lightning.trainer.trainer.Trainer"] = THIRD_PARTY["pytorch_lightning.Trainer"]
#: values that mean a run would train nothing, with why (checked on top of the ranges)
NOTHING_TO_TRAIN = {("pytorch_lightning.Trainer", "max_epochs"): (0, "a run of 0 epochs trains nothing: give 1 or more "
                                                                       "(or -1 for no limit)"),
                    ("pytorch_lightning.Trainer", "max_steps"): (0, "a run of 0 steps trains nothing: give 1 or more "
                                                                      "(or -1 for no limit)")}
NOTHING_TO_TRAIN |= {("pytorch_lightning.trainer.trainer.Trainer", key): value
                     for (_, key), value in list(NOTHING_TO_TRAIN.items())}

_WORDS = {Gt: "greater than", Ge: "at least", Lt: "less than", Le: "at most"}


def constraints(hint: Any) -> list[Any]:
    """The annotated-types constraints of a hint (Annotated[...], also inside Optional[...] and list[...])."""
    found = list(getattr(hint, "__metadata__", ()))
    for arg in getattr(hint, "__args__", ()):
        found += constraints(arg)
    return found


def broken(value: Any, hint: Any) -> str | None:
    """The range `value` breaks ("at least 1", "greater than 0 and less than 1"), or None when it is in it."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple)):
        return next((why for why in (broken(v, hint) for v in value) if why), None)
    if not isinstance(value, (int, float)):
        return None
    for rule in constraints(hint):
        parts = [(kind, getattr(rule, name)) for name, kind in (("gt", Gt), ("ge", Ge), ("lt", Lt), ("le", Le))
                 if getattr(rule, name, None) is not None]
        if not all({Gt: value > bound, Ge: value >= bound, Lt: value < bound, Le: value <= bound}[kind]
                   for kind, bound in parts):
            return " and ".join(f"{_WORDS[kind]} {bound}" for kind, bound in parts)
    return None
