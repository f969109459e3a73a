"""Fine-tuning options of a run config, through the real training loop and store."""

import numpy as np
import pytest
from tests.run_configs import typed_config

from lrlab.schedules import cosine
from lrlab.store.sqlite import Store
from lrlab.training.loop import train_run


def _config(**finetune):
    config = {
        "task": "digits-transfer",
        "task_options": {"shots": 10},
        "optimizer": "sgd(momentum=0.9)",
        "schedule": "cosine(lr={lr}, total_steps={total_steps})",
        "lr": 0.002,
        "seed": 0,
        "epochs": 6,
        "batch_size": 25,
    }
    if finetune:
        config["finetune"] = finetune
    return typed_config(config)


def test_recorded_lrs_are_schedule_times_multiplier(tmp_path):
    store = Store(tmp_path / "runs.db")
    config = _config(rules={"head.*": 10.0}, layer_decay=0.5, unfreeze_every=2)
    record = train_run(config, store, "ft")
    assert record.status == "done", record.error
    steps = store.steps("ft")
    assert steps.lrs.shape == (12, 6)  # 50 examples / 25 = 2 steps x 6 epochs; 3 layers x (decay, no decay)
    expected = cosine(0.002, total_steps=12)(steps.step)  # the LR each step was taken with
    # conv1 (depth 2): 0.25, conv2 (depth 1): 0.5, head (depth 0) x rule 10: 10
    for column, mult in zip(steps.lrs.T, [0.25, 0.25, 0.5, 0.5, 10.0, 10.0]):
        np.testing.assert_allclose(column, expected * mult)
    assert store.epochs("ft")[-1].val_accuracy > 0.8


@pytest.mark.slow
def test_example_sweep_variants_train_and_head_multiplier_leads_at_low_lr(tmp_path):
    store = Store(tmp_path / "runs.db")
    variants = {
        "uniform": {},
        "frozen": {"freeze": ["conv*"]},
        "discriminative": {"rules": {"head": 10.0}, "unfreeze_every": 2},
    }
    final = {}
    for name, finetune in variants.items():
        record = train_run(_config(**finetune), store, name)
        assert record.status == "done", record.error
        final[name] = store.epochs(name)[-1]
    # 12 steps at base LR 0.002: only the 10x head gets far.
    assert final["discriminative"].val_loss < 0.7 * min(final["uniform"].val_loss, final["frozen"].val_loss)
    assert final["discriminative"].val_accuracy > 0.8
