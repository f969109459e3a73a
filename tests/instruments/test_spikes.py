"""Loss spikes by OLMo's and LLM Foundry's rules, found at the step they were injected."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lrlab.instruments import FOUNDRY, OLMO, Instruments, find_spikes


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 1000), st.integers(140, 400), st.floats(2.0, 4.0))
def test_an_injected_spike_is_found_at_its_step_and_nowhere_else(seed, at, level):
    rng = np.random.default_rng(seed)
    losses = 2.0 + 0.05 * rng.standard_normal(500)
    losses[at] = 2.0 * level + 1.0  # above 2x the mean and far above 6 sigma
    assert find_spikes(losses, OLMO) == [at]
    assert find_spikes(losses, FOUNDRY) == [at]


def test_a_non_finite_loss_is_a_spike_and_the_rules_differ_on_a_noisy_run():
    losses = [1.0, 1.2] * 50 + [float("nan")]
    assert find_spikes(losses, OLMO) == [100]
    noisy = [1.0] * 60 + [2.5] + [1.0] * 5  # 2.5x the mean but the window has no spread: both flag it
    assert find_spikes(noisy, FOUNDRY) == [60] and find_spikes(noisy, OLMO) == [60]
    wide = [*np.tile([0.5, 1.5], 60).tolist(), 2.2]  # within 6 sigma, above 2x the mean of 1.0
    assert find_spikes(wide, OLMO) == [] and find_spikes(wide, FOUNDRY) == [120]


def test_the_panel_reports_a_spike_at_its_step_with_the_evidence():
    panel = Instruments("spikes")
    rng = np.random.default_rng(1)
    for step in range(300):
        panel.observe_step(step + 1, 9.0 if step + 1 == 222 else 1.0 + 0.01 * rng.standard_normal())
    _series, (finding,) = panel.take()
    assert finding.kind == "spike" and finding.step == 222 and finding.evidence["loss"] == 9.0
    assert finding.message.startswith("step 222: the loss 9 spiked above")
