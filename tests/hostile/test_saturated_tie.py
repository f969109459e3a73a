"""A tie on a saturated metric: when the top finalists reach the very same validation error
on every seed, the error cannot tell them apart (margin 0, noise 0); the validation loss
decides, and the verdict says so. A tie within real seed noise keeps the simplicity rule
(the README's study keeps its answer)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lrlab
from lrlab.core.records import EpochRecord, RunRecord
from lrlab.schedules import parse
from lrlab.study.recommend import margin_lines, recommend, tie_reason

COSINE = "cosine(lr=0.1, total_steps=100)"
CONSTANT = "constant(lr=0.1)"
NAMES = {parse(COSINE): "cosine", parse(CONSTANT): "constant", parse("one_cycle(max_lr=0.03, total_steps=100)"):
         "one-cycle", parse("step_decay(lr=0.0095, step_size=77)"): "step"}  # fmt: skip


def _runs(schedules: dict[str, str], per_seed: dict[str, list[tuple[float, float]]]):
    runs, epochs = [], {}
    for key, spec in schedules.items():
        for seed, (error, loss) in enumerate(per_seed[key]):
            run_id = f"{key}{seed}"
            lr = parse(spec)(0)
            config = {"task": "t", "optimizer": "adam", "schedule": spec, "lr": lr, "seed": seed}
            runs.append(RunRecord(id=run_id, sweep="s", status="done", config=config, seed=seed))
            epochs[run_id] = [EpochRecord(run_id, 1, 10, 1.0, loss, error, 1 - error, 1.0)]
    return runs, epochs


def _rec(per_seed, schedules=None):
    schedules = schedules or {"cos": COSINE, "const": CONSTANT}
    runs, epochs = _runs(schedules, per_seed)
    finalists = list(dict.fromkeys(r.configuration for r in runs))
    return recommend(runs, epochs, NAMES, finalists=finalists, break_ties=True)


def test_a_saturated_tie_goes_to_the_lower_validation_loss_not_the_constant():
    rec = _rec({"cos": [(0.0, 0.010), (0.0, 0.012), (0.0, 0.011)],
                "const": [(0.0, 0.050), (0.0, 0.060), (0.0, 0.055)]})  # fmt: skip
    assert (rec.best.schedule_name, rec.runner_up.schedule_name) == ("cosine", "constant")
    assert rec.tie and rec.saturated and rec.margin == 0 and rec.noise == 0
    lines = margin_lines(rec, "validation error")
    assert lines[0].startswith("ties with adam + constant peaking at lr=0.1 (0 ± 0) in validation error: both reach "
                               "0 on each of the 3 shared seeds (the metric is saturated)")  # fmt: skip
    assert lines[1] == "so the validation loss decides: 0.011 vs 0.055 for the runner-up"
    assert "within the paired seed noise 0" not in " ".join(lines)
    assert tie_reason(rec) == (
        "both reach val_error 0 on each of the 3 shared seeds, so the lower validation loss decides (0.011 vs 0.055)"
    )


def test_it_holds_whichever_order_the_runs_come_in():
    rec = _rec({"const": [(0.0, 0.050), (0.0, 0.060)], "cos": [(0.0, 0.010), (0.0, 0.012)]},
               {"const": CONSTANT, "cos": COSINE})  # fmt: skip
    assert rec.best.schedule_name == "cosine" and rec.saturated


@pytest.mark.parametrize("error", [0.0, 0.03125, 0.5])
def test_saturated_at_any_common_value(error):
    rec = _rec({"cos": [(error, 0.2), (error, 0.2)], "const": [(error, 0.1), (error, 0.1)]})
    assert rec.best.schedule_name == "constant" and rec.saturated  # here the constant has the lower loss


def test_equal_losses_too_fall_back_to_the_simplicity_rule():
    rec = _rec({"cos": [(0.0, 0.0), (0.0, 0.0)], "const": [(0.0, 0.0), (0.0, 0.0)]})
    assert rec.best.schedule_name == "constant" and rec.tie and not rec.saturated
    assert "fewer schedule knobs" in tie_reason(rec)


def test_one_shared_seed_is_no_saturated_tie():
    rec = _rec({"cos": [(0.0, 0.01)], "const": [(0.0, 0.05)]})
    assert not rec.saturated and not rec.tie and rec.best.schedule_name == "cosine"


def test_a_tie_within_real_noise_keeps_the_simplicity_rule():
    """Not saturated: the per-seed errors differ. The constant, simpler, wins the tie as before."""
    rec = _rec({"cos": [(0.02, 0.01), (0.04, 0.01), (0.03, 0.01)],
                "const": [(0.03, 0.05), (0.03, 0.06), (0.035, 0.055)]})  # fmt: skip
    assert rec.tie and not rec.saturated
    assert rec.best.schedule_name == "constant"
    assert "fewer schedule knobs" in tie_reason(rec)


def test_the_readmes_study_keeps_its_answer():
    """The README's top two: adam + one-cycle 0.013 ± 0.0085 over 3 seeds and adam + step
    0.01578 ± 0.0016; a margin of 0.002786 within a noise of 0.0116: step, fewer knobs."""
    one_cycle, step = "one_cycle(max_lr=0.03, total_steps=100)", "step_decay(lr=0.0095, step_size=77)"
    rec = _rec(
        {"oc": [(0.00557, 0.05), (0.0111, 0.06), (0.0223, 0.07)], "st": [(0.0167, 0.06), (0.0139, 0.06),
                                                                          (0.0167, 0.07)]},
        {"oc": one_cycle, "st": step},
    )  # fmt: skip
    assert rec.top.schedule_name == "one-cycle"
    assert rec.tie and not rec.saturated
    assert rec.best.schedule_name == "step"
    assert tie_reason(rec).startswith("step has fewer schedule knobs than one-cycle")


def test_a_clear_winner_is_untouched():
    rec = _rec({"cos": [(0.01, 0.3), (0.01, 0.3)], "const": [(0.2, 0.01), (0.2, 0.01)]})
    assert rec.best.schedule_name == "cosine" and not rec.tie and not rec.saturated


# ------------------------------------------------------------ through lrlab.study


def test_a_study_on_a_saturated_task_says_the_loss_decided(tmp_path, one_thread):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (128,), generator=g)
    x = torch.randn(128, 4, generator=g) * 0.3 + (y[:, None].float() * 2 - 1)

    def blobs():
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    result = lrlab.study(blobs, (x[:96], y[:96]), (x[96:], y[96:]), epochs=3, batch_size=16, optimizers=["sgd"],
                         store=tmp_path / "runs.db", device="cpu")  # fmt: skip
    rec = result.recommendation
    tied = [c for c in rec.candidates if c.finalist and c.seeds == 3 and c.per_seed == rec.best.per_seed]
    assert rec.best.score == 0.0 and len(tied) >= 2  # every one of them at 0% error on every seed
    assert rec.saturated
    assert rec.best.val_loss == min(c.val_loss for c in tied)
    text = str(result)
    assert "(the metric is saturated)" in text and "so the validation loss decides" in text
    assert "within the paired seed noise 0 " not in text
    assert "lower validation loss decides" in (result.verdict.tie.reason or "")
