"""LR-free optimizers as contenders in the study: their plans, their verdict line against the
recommendation within the paired seed noise, their compute and an estimator's path, the
snippets built from their own libraries, and the stored verdict read back."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from tests.study.test_successive_halving import _epoch, _run

from lrlab.core.verdict import LrFreeLine, StudyVerdict
from lrlab.finder.suggest import optimizer_note
from lrlab.schedules import parse
from lrlab.store.sqlite import Store
from lrlab.study.codegen import hf_snippet, keras_snippet, lightning_snippet, torch_snippet
from lrlab.study.contenders import contenders
from lrlab.study.recommend import NOISE_SE, recommend
from lrlab.study.run import StudyResult, run_study
from lrlab.study.summary import (
    EstimatePath,
    LrFreeEvidence,
    estimate_path,
    lr_free_family,
    markdown,
    verdict_lines,
)

ADAM = ("adam", "cosine(lr=0.01, total_steps=10)", 0.01)
PRODIGY = ("prodigy", "constant(lr=1.0)", 1.0)


def _config_runs(prefix, optimizer, schedule, lr, errors):
    runs = [_run(f"{prefix}{s}", schedule, lr, seed=s, optimizer=optimizer) for s in range(len(errors))]
    return runs, {f"{prefix}{s}": _epoch(f"{prefix}{s}", e) for s, e in enumerate(errors)}


def _result(adam_errors, prodigy_errors, evidence=None, adam=ADAM, prodigy=PRODIGY):
    ra, ea = _config_runs("a", *adam, adam_errors)
    rp, ep = _config_runs("p", *prodigy, prodigy_errors)
    names = {parse(adam[1]): adam[1].split("(")[0], parse(prodigy[1]): prodigy[1].split("(")[0]}
    rec = recommend(ra + rp, {**ea, **ep}, names, finalists={ra[0].configuration, rp[0].configuration},
                    break_ties=True)  # fmt: skip
    evidence = evidence or LrFreeEvidence(
        1000, {"prodigy": 60}, {"prodigy": EstimatePath(1e-6, 0.0083, 1.3, 0)}, frozenset({"prodigy"})
    )
    return StudyResult("study-t-small", "t", "small", {}, ["s"], ra + rp, names, rec, total_steps=10, epochs=1,
                       extras={"finalists": 2, "seeds": [0, 1, 2]}, lr_free=evidence)  # fmt: skip


def test_behind_by_more_than_the_paired_noise():
    adam, prodigy = [0.020, 0.030, 0.025], [0.050, 0.061, 0.054]
    result = _result(adam, prodigy)
    (line,) = result.verdict.lr_free
    diffs = np.subtract(prodigy, adam)
    noise = NOISE_SE * diffs.std(ddof=1) / math.sqrt(3)
    assert line.verdict == "behind" and line.family == "estimator"
    assert line.margin.value == pytest.approx(diffs.mean()) and line.margin.noise == pytest.approx(noise)
    assert line.margin.shared_seeds == 3 and line.score == pytest.approx(np.mean(prodigy))
    assert (line.steps, line.study_steps) == (60, 1000) and line.promoted
    assert line.text.startswith("LR-free prodigy (estimates its own LR): best constant at lr=1 x its estimate")
    assert f"is behind the recommendation (adam + cosine at lr=0.01: {np.mean(adam):.4g}" in line.text
    assert "60 optimizer steps, 6.0% of the study's 1,000 (range tests included)" in line.text
    assert "moved from 1e-06 to 0.0083 (x8,300, seed 0), still rising at the end (x1.30 over the last tenth" in (
        line.text
    )
    # the line is the verdict's last, so the CLI, print(result), recommendation.md and the page show it
    assert result.verdict.lines[-1] == line.text and verdict_lines(result)[-1] == line.text
    assert f"- {line.text}" in markdown(result)


def test_a_tie_within_the_noise_is_said_as_a_tie():
    # the pair of the tie test (means 0.030 and 0.035, paired noise 0.01528); Adam's constant LR is the
    # simpler schedule, so it is the recommendation, and Prodigy + cosine ties with it
    adam = ("adam", "constant(lr=0.01)", 0.01)
    prodigy = ("prodigy", "cosine(lr=1.0, total_steps=10)", 1.0)
    result = _result([0.035, 0.030, 0.040], [0.020, 0.040, 0.030], adam=adam, prodigy=prodigy)
    assert result.recommendation.best.optimizer == "adam" and result.recommendation.tie
    (line,) = result.verdict.lr_free
    assert line.verdict == "ties" and line.margin.within_noise
    assert line.margin.value == pytest.approx(-0.005) and line.margin.noise == pytest.approx(0.015275, rel=1e-4)
    assert "best cosine at lr=1 x its estimate" in line.text
    assert "ties with the recommendation (adam + constant at lr=0.01: 0.035 ± 0.005) within the paired seed " in (
        line.text
    )
    # the other way round, Prodigy is the recommendation and ties with the best of the others
    (line,) = _result([0.020, 0.040, 0.030], [0.035, 0.030, 0.040]).verdict.lr_free
    assert line.verdict == "ties"
    assert "is the recommendation; ties with the best configuration of the other optimizers (adam" in line.text


def test_when_the_lr_free_optimizer_is_the_recommendation_it_is_judged_against_the_others():
    result = _result([0.050, 0.061, 0.054], [0.020, 0.030, 0.025])
    assert result.recommendation.best.optimizer == "prodigy"
    (line,) = result.verdict.lr_free
    assert line.verdict == "ahead" and line.margin.value < 0
    assert "is the recommendation; is ahead of the best configuration of the other optimizers (adam" in line.text


def test_the_verdict_field_round_trips_and_older_records_read_without_it():
    verdict = _result([0.020, 0.030, 0.025], [0.050, 0.061, 0.054]).verdict
    stored = verdict.to_dict()
    assert StudyVerdict.from_dict(stored) == verdict
    assert LrFreeLine.from_dict(stored["lr_free"][0]) == verdict.lr_free[0]
    older = {k: v for k, v in stored.items() if k != "lr_free"}
    read = StudyVerdict.from_dict(older)
    assert read.lr_free == () and "lr_free" not in read.to_dict()  # an older record writes back unchanged


def test_estimate_path_divides_out_the_schedule_and_judges_the_tail():
    steps = np.arange(100)
    multiplier = parse("cosine(lr=1.0, total_steps=100)")(steps)
    d = np.minimum(1e-6 * 1.5**steps, 0.01)  # saturates at step 23
    path = estimate_path(d * multiplier, multiplier)
    assert (path.first, path.last, path.tail) == (pytest.approx(1e-6), pytest.approx(0.01), pytest.approx(1.0))
    assert path.words().startswith("settled (x1.00")
    rising = estimate_path(1e-6 * 1.2**steps, np.ones(100))
    assert rising.tail == pytest.approx(1.2**9) and rising.words().startswith("still rising at the end (x5.16")
    assert estimate_path(np.full(10, 1e-6), np.ones(10)).words() == "stayed near its start (the estimate never grew)"
    assert estimate_path([1.0], [0.0]) is None


def test_contenders_promote_the_best_lr_free_configuration_that_missed_the_cut():
    runs = [_run("a0", "constant(lr=0.1)", 0.1), _run("a1", "cosine(lr=0.1, total_steps=10)", 0.1),
            _run("p0", "constant(lr=1.0)", 1.0, optimizer="prodigy"),
            _run("p1", "cosine(lr=1.0, total_steps=10)", 1.0, optimizer="prodigy"),
            _run("s0", "constant(lr=0.01)", 0.01, optimizer="schedulefree_adamw")]  # fmt: skip
    epochs = {rid: _epoch(rid, e) for rid, e in zip(["a0", "a1", "p0", "p1", "s0"], [0.01, 0.02, 0.05, 0.04, 0.03])}
    chosen = [runs[0], runs[4]]  # the schedule-free one made the cut
    assert [r.id for r in contenders(runs, epochs, chosen)] == ["p1"]


@pytest.mark.parametrize("name", ["schedulefree_adamw", "schedulefree_sgd", "prodigy", "dadapt_adam", "dadapt_sgd"])
def test_snippets_build_the_optimizer_from_its_library_and_compile(name):
    schedule = "constant(lr=0.01)" if name.startswith("schedulefree") else "cosine(lr=1.0, total_steps=100)"
    code = torch_snippet(name, schedule, study_steps=100)
    compile(code, "torch_snippet", "exec")
    compile(hf_snippet(name, schedule, study_steps=100), "hf_snippet", "exec")
    methods = lightning_snippet(name, schedule, study_steps=100).split("# a method of your LightningModule")[-1]
    compile("class Module:\n" + methods.split("\n", 1)[1], "lightning_snippet", "exec")
    compile(keras_snippet(name, schedule), "keras_snippet", "exec")
    package = {"schedulefree": "schedulefree", "prodigy": "prodigyopt", "dadapt": "dadaptation"}
    assert f"from {next(v for k, v in package.items() if name.startswith(k))} import " in code
    if name.startswith("schedulefree"):
        assert "LRScheduler" not in code and "optimizer.train()" in code and "optimizer.eval()" in code
        assert "ConstantLR" in hf_snippet(name, schedule)  # else the Trainer adds its linear decay
        assert "self.optimizers().eval()" in lightning_snippet(name, schedule)
    else:
        assert "scheduler = LRScheduler(optimizer, schedule)" in code and "lr=1.0" in code


def test_the_schedule_free_snippet_runs_as_the_library_contract_says():
    import schedulefree

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    train_loader = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    model = torch.nn.Linear(4, 3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    scope = {"model": model, "train_loader": train_loader, "loss_fn": torch.nn.functional.cross_entropy,
             "epochs": 3}  # fmt: skip
    exec(torch_snippet("schedulefree_adamw", "constant(lr=0.05)", study_steps=12), scope)
    optimizer = scope["optimizer"]
    assert isinstance(optimizer, schedulefree.AdamWScheduleFree) and not optimizer.param_groups[0]["train_mode"]
    # the same by hand, following the library's README
    reference = torch.nn.Linear(4, 3)
    reference.load_state_dict(start)
    opt = schedulefree.AdamWScheduleFree(reference.parameters(), lr=0.05)
    for _ in range(3):
        opt.train()
        for inputs, targets in train_loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(reference(inputs), targets).backward()
            opt.step()
    opt.eval()
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)  # foreach kernels: last-bit differences
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(torch.nn.functional.linear(x, *start.values()), y)
        assert torch.nn.functional.cross_entropy(model(x), y) < before


def test_optimizer_notes_for_lr_free_names():
    for name in ("Prodigy", "DAdaptAdam", "DAdaptSGD", "prodigy"):
        assert "no range test is needed" in optimizer_note(name)
    for name in ("AdamWScheduleFree", "SGDScheduleFree", "schedulefree_adamw"):
        assert "the range test's LR is for a constant LR" in optimizer_note(name)
    assert optimizer_note("Adam") is None and "not among" in optimizer_note("Lion")
    assert [lr_free_family(n) for n in ("prodigy", "dadapt_sgd", "schedulefree_sgd", "sgdm")] == [
        "estimator", "estimator", "schedule-free", None
    ]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lrfree")
    store = Store(folder / "runs.db")
    result = run_study("digits-linear", store, optimizers=["sgdm", "prodigy", "schedulefree_adamw"], epochs=2,
                       out=folder / "out")  # fmt: skip
    return result, store, folder


@pytest.mark.slow
def test_a_real_study_trains_lr_free_optimizers_as_contenders(study):
    result, store, _folder = study
    assert set(result.finders) == {"sgd(momentum=0.9)", "schedulefree_adamw"}  # Prodigy has no range test
    first = [r for r in result.runs if r.config.seed == 0 and "-bracket" not in (r.sweep or "")]  # the first rung
    prodigy = [r for r in first if r.config.optimizer == "prodigy"]
    assert sorted(str(r.config.schedule) for r in prodigy) == [
        "constant(lr=1.0)", f"cosine(lr=1.0, total_steps={result.total_steps})"
    ] and {r.config.lr for r in prodigy} == {1.0}  # fmt: skip
    free = [r for r in first if r.config.optimizer == "schedulefree_adamw"]
    anchor = result.finders["schedulefree_adamw"].lr
    assert all(str(r.config.schedule).startswith("constant(") for r in free)
    assert sorted(r.config.lr for r in free) == pytest.approx([anchor / 3, anchor, 3 * anchor], rel=1e-12)
    assert len(first) == 27 + 2 + 3
    extended = [r for r in result.runs if (r.sweep or "").rsplit("-", 1)[-1] in ("bracket1", "bracket2")]
    for run in extended:  # the bracketing rounds: one grid step beyond the first rung at a time
        assert run.config.optimizer != "prodigy"  # an LR estimator has no LR grid to extend
        steps = math.log(run.config.lr / result.grids[run.config.optimizer].anchor) / math.log(3)
        assert abs(steps - round(steps)) < 1e-9 and abs(round(steps)) in (2, 3)
    lines = {line.optimizer: line for line in result.verdict.lr_free}
    assert set(lines) == {"prodigy", "schedulefree_adamw"}
    for spec, line in lines.items():
        best = next(c for c in result.recommendation.candidates if c.optimizer == spec and c.seeds > 0)
        assert best.seeds == 3 and line.seeds == 3  # a finalist or promoted as a contender
        assert line.verdict in ("ties", "behind", "ahead") and line.margin.shared_seeds == 3
        assert line.text in result.verdict.lines
    # compute: the steps stored for its runs plus its range test, against the study's
    steps = {r.id: store.step_count(r.id) for r in result.runs}
    finder_steps = {k: int(f.config.get("iterations_run") or len(f.lrs)) for k, f in result.finders.items()}
    assert lines["prodigy"].steps == sum(n for rid, n in steps.items() if store.run(rid).config.optimizer == "prodigy")
    assert lines["schedulefree_adamw"].steps == finder_steps["schedulefree_adamw"] + sum(
        n for rid, n in steps.items() if store.run(rid).config.optimizer == "schedulefree_adamw"
    )
    assert lines["prodigy"].study_steps == sum(steps.values()) + sum(finder_steps.values())
    # Prodigy's estimate starts at its d0 (1e-6) and grows: read from the stored steps
    assert lines["prodigy"].estimate_first == pytest.approx(1e-6) and lines["prodigy"].estimate_last > 1e-4
    # the stored verdict reads back with its LR-free lines; the page and recommendation.md show them
    stored = StudyVerdict.from_dict(store.study_record(result.name))
    assert stored.lr_free == result.verdict.lr_free
    page = result.files.report.read_text()
    assert page.count('<li class="lr-free">') == 2
    md = result.files.recommendation.read_text()
    assert all(f"- {line.text}" in md for line in lines.values())
    assert "from prodigyopt import Prodigy" in md or "from schedulefree import AdamWScheduleFree" in md


@pytest.mark.slow
def test_the_cli_prints_the_lr_free_lines_and_says_why_there_is_no_range_test(study):
    result, _store, folder = study
    done = subprocess.run(
        [sys.executable, "-m", "lrlab.cli", "study", "--task", "digits-linear", "--optimizers",
         "sgdm,prodigy,schedulefree_adamw", "--epochs", "2", "--db", str(folder / "runs.db"), "--out",
         str(folder / "cli"), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = " ".join(done.stdout.replace("│", " ").split())
    assert "prodigy: no range test (it estimates its own LR" in printed
    assert "schedulefree_adamw is schedule-free: the range test's LR is for a constant LR" in printed
    for line in result.verdict.lr_free:
        assert " ".join(line.text.split()) in printed
