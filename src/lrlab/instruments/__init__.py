"""Instruments that read a learning rate while training runs (update-to-weight ratio, the step probe, sharpness, gradient noise scale, spikes, the LR audit).

:class:`Instruments` is the panel of one run, fed by the one recorder
(:class:`lrlab.training.Recorder`), so lrlab's own loop, ``lrlab.track`` and the Lightning,
Hugging Face and Keras recorders all carry it. The cheap instruments are on by default
(``update_ratio``, ``spikes``, ``warmup``, ``lr_audit`` where the schedule is known,
``eval_mode``, ``step_probe`` where a fixed-batch loss is given); ``sharpness``, ``noise_scale`` and ``per_layer`` are named to be turned on.
Each instrument is also a pure function of its own module, tested on plain numbers.
"""

from lrlab.instruments.audit import LRAudit, auditable
from lrlab.instruments.noise import MicroBatchNorms, NoiseScale, noise_estimates
from lrlab.instruments.panel import PROBE_LOW, RATIO_HIGH, RATIO_LOW, Instruments
from lrlab.instruments.probe import StepProbe, optimal_multiple
from lrlab.instruments.ratio import UpdateRatio, update_ratios
from lrlab.instruments.settings import ALL, DEFAULT, InstrumentSettings
from lrlab.instruments.sharpness import Sharpness, adam_preconditioner, stability_limit, top_eigenvalue
from lrlab.instruments.spikes import FOUNDRY, OLMO, SpikeDetector, find_spikes

__all__ = [
    "ALL",
    "DEFAULT",
    "FOUNDRY",
    "OLMO",
    "PROBE_LOW",
    "RATIO_HIGH",
    "RATIO_LOW",
    "InstrumentSettings",
    "Instruments",
    "LRAudit",
    "MicroBatchNorms",
    "NoiseScale",
    "Sharpness",
    "SpikeDetector",
    "StepProbe",
    "UpdateRatio",
    "adam_preconditioner",
    "auditable",
    "find_spikes",
    "noise_estimates",
    "optimal_multiple",
    "stability_limit",
    "top_eigenvalue",
    "update_ratios",
]
