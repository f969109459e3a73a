"""The best configuration by the one scorer, and its margin over the runner-up."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lrlab.core.diagnostics._common import Finding, display, ranked_configurations
from lrlab.core.grouping import Configuration
from lrlab.core.records import EpochRecord


def best_configuration(
    configs: Sequence[Configuration], epochs: Mapping[str, Sequence[EpochRecord]]
) -> Finding | None:
    """The best configuration by the one scorer and its margin over the runner-up.

    The margin is compared with the spread over seeds (max - min of either configuration):
    a margin inside that spread is reported as not separated from noise.
    """
    ranked = ranked_configurations(configs, epochs)
    if not ranked:
        ranked = ranked_configurations(configs, epochs, "train_loss")
    if not ranked:
        return None
    cfg, best = ranked[0]
    metric = best.metric
    what = metric.replace("_", " ")
    seeds = (
        f" (mean of {best.seeds} seeds, range {display(best.low)}-{display(best.high)})"
        if best.seeds > 1
        else ""
    )
    numbers: dict[str, Any] = {"metric": metric, "best": best.mean, "best_seeds": best.seeds}
    message = f"Best configuration: {cfg.label} with final {what} {display(best.mean)}{seeds}"
    labels = [cfg.label]
    if len(ranked) > 1:
        second_cfg, second = ranked[1]
        margin = second.mean - best.mean
        relative = margin / abs(second.mean) if second.mean else math.inf
        spread = max(best.high - best.low, second.high - second.low)
        numbers |= {
            "runner_up": second.mean,
            "margin": margin,
            "relative_margin": relative,
            "seed_spread": spread,
        }
        message += (
            f"; runner-up {second_cfg.label} at {display(second.mean)}, "
            f"a margin of {display(margin)} ({relative:.1%})"
        )
        if margin == 0 and best.val_loss is not None and second.val_loss is not None:
            message += f", a tie broken by the lower validation loss ({display(best.val_loss)} vs {display(second.val_loss)})"
        elif max(best.seeds, second.seeds) > 1:
            message += f", {'larger' if margin > spread else 'not larger'} than the spread over seeds ({display(spread)})"
        labels.append(second_cfg.label)
    if metric == "val_error" and best.val_loss is not None:
        numbers["best_val_loss"] = best.val_loss
        message += f". Its validation loss is {display(best.val_loss)}"
    return Finding("best", "info", message + ".", numbers, tuple(labels), best.run_ids)
