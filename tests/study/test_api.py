"""``lrlab.study`` from Python on the user's own model: a regression study and a
custom-metric study end to end (real training, a real store, the report)."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrlab
from lrlab.store.sqlite import Store
from lrlab.study.api import TASK_KEYWORDS, study, user_task
from lrlab.study.plan import BUDGETS


def _data(n=160, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)
    return x, y


def regressor():
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


@pytest.fixture(scope="module")
def regression_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    x, y = _data()
    torch.set_num_threads(1)
    result = lrlab.study(regressor, (x[:128], y[:128]), (x[128:], y[128:]), name="toy-reg", epochs=4,
                         batch_size=16, optimizers=["adam"], store=tmp / "runs.db", device="cpu")  # fmt: skip
    return result, tmp


def test_a_regression_study_from_python(regression_study):
    result, _ = regression_study
    assert result.task.kind == "regression" and result.name == "study-toy-reg-small"
    assert all(s.startswith("study-toy-reg-small") for s in result.sweeps)
    store = Store(result.store_path)
    runs = [r for r in store.runs() if r.sweep in result.sweeps]
    # Nine schedules at each of the budget's LR factors, every run under the task's name.
    assert len(runs) >= 9 * len(BUDGETS["small"].lr_factors) and all(r.config.task == "toy-reg" for r in runs)
    assert {r.objective.loss for r in runs} == {"MSE"} and {r.objective.metric for r in runs} == {"val_loss"}
    epochs = store.epochs_for([runs[0].id])[runs[0].id]
    assert len(epochs) == 4 and {"val_mae", "val_r2"} <= set(epochs[-1].metrics)
    # The range test is stored under the name the runs use, so the report finds it.
    assert {f.task for f in store.finder_results(sweep=result.name)} == {"toy-reg"}
    best = result.recommendation.best
    assert result.recommendation.metric == "val_loss"
    # Trained to well below the targets' variance (about 15): the study found a working LR.
    assert best.score < 0.25 * float(_data()[1][128:].var())
    text = str(result)
    assert "validation loss (MSE)" in text and "nats" not in text


def test_the_schedule_in_the_users_steps(regression_study):
    result, _ = regression_study
    study_steps = result.result.total_steps
    assert study_steps == 4 * 8
    same = result.schedule_for(study_steps)
    assert same == result.schedule
    longer = result.schedule_for(10 * study_steps)
    steps = torch.arange(study_steps + 1, dtype=torch.float64).numpy()
    # Each step count keeps its fraction of the run: the longer schedule at 10t is the measured one at t.
    assert longer(steps * 10) == pytest.approx(result.schedule(steps), rel=1e-6)


def test_the_report_has_the_range_test(regression_study):
    result, tmp = regression_study
    html = result.report(tmp / "report.html").read_text()
    assert "Range test: loss vs learning rate" in html
    with pytest.raises(ValueError, match=r"must end in \.html"):
        result.report(tmp / "report.txt")


def test_the_reports_loss_axes_name_the_tasks_loss(regression_study):
    result, tmp = regression_study
    html = result.report(tmp / "labels.html").read_text()
    assert "validation loss (MSE)" in html and "loss (cross-entropy, nats)" not in html


def test_a_custom_metric_study_from_loaders(tmp_path):
    x, y = _data()
    train = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(x[128:], y[128:]), batch_size=32)

    def l1(output, target):
        return (output.squeeze(-1) - target).abs().mean()

    def val_within_half(output, target):  # share of predictions within 0.5 of the target
        return ((output.squeeze(-1) - target).abs() < 0.5).float().mean()

    torch.set_num_threads(1)
    result = lrlab.study(regressor, train, val, loss_fn=l1, metrics={"val_within_half": val_within_half},
                         objective="val_within_half", higher_is_better=True, name="toy-l1", epochs=4,
                         optimizers=["adam"], store=tmp_path / "runs.db", device="cpu")  # fmt: skip
    rec = result.recommendation
    assert rec.metric == "val_within_half"
    store = Store(result.store_path)
    runs = [r for r in store.runs() if r.sweep in result.sweeps]
    assert {r.objective.loss for r in runs} == {"l1"}
    assert {r.objective.higher_is_better for r in runs} == {True}
    scores = {c.score for c in rec.candidates}
    # Higher is better: the recommendation's score is the top of every candidate's.
    assert rec.best.score >= max(scores) - 1e-9 or rec.tie
    assert 0.0 <= rec.best.score <= 1.0
    code = result.code()
    assert 'loss=loss_fn' in code["Keras"]


def test_user_task_reads_the_kind_off_the_targets():
    x, y = _data(40)
    assert user_task(regressor, (x[:32], y[:32]), (x[32:], y[32:])).kind == "regression"
    labels = (y > 0).long()
    task = user_task(lambda: nn.Linear(4, 2), (x[:32], labels[:32]), (x[32:], labels[32:]))
    assert task.kind == "classification" and task.name == "model" and task.default_batch_size == 32
    assert user_task(regressor, (x, y), (x, y), name="a_b").name == "a_b"
    assert user_task(regressor, (x, y), (x, y)).name == "regressor"


def test_user_task_takes_the_task_keywords_of_study_and_no_others():
    x, y = _data(40)
    keywords = inspect.signature(study).parameters
    assert all(keywords[k].kind is inspect.Parameter.KEYWORD_ONLY for k in TASK_KEYWORDS)
    task = user_task(regressor, (x, y), (x, y), kind="regression", epochs=3, batch_size=8, name="r")
    assert (task.kind, task.default_epochs, task.default_batch_size, task.name) == ("regression", 3, 8, "r")
    with pytest.raises(TypeError, match="unexpected keyword arguments: budget, optimizers"):
        user_task(regressor, (x, y), (x, y), optimizers=["adam"], budget="small")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "val_f1"}, "objective 'val_f1' is not a metric of task 'regressor' (it has: val_loss, "
                                  "val_mae, val_r2)"),
        ({"epochs": 0}, "epochs must be a whole number >= 1, got 0"),
        ({"name": "a:b"}, "name must be a plain name"),
        ({"kind": "ranking"}, "kind must be one of classification, language_model, regression"),
    ],
)
def test_bad_input_gets_one_line(kwargs, message):
    x, y = _data(40)
    with pytest.raises(ValueError) as info:
        user_task(regressor, (x, y), (x, y), **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_data_gets_one_line():
    with pytest.raises(ValueError, match="train must be a Dataset, a DataLoader or an"):
        user_task(regressor, 3, 4)
    with pytest.raises(ValueError, match="model_fn must be a function"):
        user_task(None, (torch.zeros(2, 4), torch.zeros(2)), (torch.zeros(2, 4), torch.zeros(2)))
