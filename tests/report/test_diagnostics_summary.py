"""The one line per kind of diagnostics: which runs a kind concerns, in a few words, from records."""

import pytest

from lrlab.core.diagnostics import describe_runs, divergence, family_in_words, kind_summary
from lrlab.core.grouping import group_runs
from lrlab.core.records import schedule_family
from lrlab.schedules import parse

from ._records import run

STEPS = 300


def _cyclic(peak):
    return f"cyclic(base_lr={peak / 4!r}, max_lr={peak!r}, step_size=50)"


def _sweep(diverged=()):
    """adam: constant at 0.001, 0.01, 0.5 and cyclic peaking at 0.03, 0.3, 0.9; sgd: constant 0.1, 1."""
    specs = [("adam", f"constant(lr={lr!r})", lr) for lr in (0.001, 0.01, 0.5)]
    specs += [("adam", _cyclic(peak), peak / 4) for peak in (0.03, 0.3, 0.9)]
    specs += [("sgd", f"constant(lr={lr!r})", lr) for lr in (0.1, 1.0)]
    runs = []
    for i, (opt, schedule, lr) in enumerate(specs):
        rid = f"r{i}"
        status = "diverged" if rid in diverged else "done"
        runs.append(run(rid, lr, status=status, diverged_step=3 if rid in diverged else None,
                        optimizer=opt, schedule=schedule))  # fmt: skip
    return group_runs(runs), {r.id: STEPS for r in runs}


def test_a_group_at_the_top_of_its_lr_range_is_named_once_by_its_lower_bound():
    configs, planned = _sweep()
    # adam's two cyclic runs at the top (0.3, 0.9) but adam's constant at 0.5 is not concerned:
    # the words name the cyclic family of adam from its peak LR 0.3 up.
    assert describe_runs(["r4", "r5"], configs, planned) == "every cyclic run of adam at peak lr >= 0.3"
    # With adam's constant 0.5 concerned too, every adam run from 0.3 up is: adam is named once.
    assert describe_runs(["r2", "r4", "r5"], configs, planned) == "every adam run at peak lr >= 0.3"
    assert describe_runs(["r6", "r7"], configs, planned) == "every sgd run"
    assert describe_runs([r.id for c in configs for r in c.runs], configs, planned) == "every run"


def test_runs_in_the_middle_of_a_range_are_counted_with_their_lr_range():
    configs, planned = _sweep()
    assert describe_runs(["r1"], configs, planned) == "1 constant run of adam at peak lr 0.01"
    assert describe_runs(["r0", "r2"], configs, planned) == "2 constant runs of adam at peak lr 0.001-0.5"


def test_groups_are_named_largest_first_and_the_rest_counted():
    configs, planned = _sweep()
    words = describe_runs(["r4", "r5", "r6", "r1"], configs, planned, max_groups=2)
    assert words == (
        "every cyclic run of adam at peak lr >= 0.3, 1 constant run of adam at peak lr 0.01 "
        "and 1 more run in 1 other group"
    )


def test_the_divergence_line_counts_the_runs_and_names_the_smallest_peak_that_diverged():
    configs, planned = _sweep(diverged=("r4", "r5", "r7"))
    findings = divergence(configs, planned)
    line = kind_summary("divergence", findings, configs, planned)
    assert line == (
        "3 runs diverged: every cyclic run of adam at peak lr >= 0.3 and every sgd run at peak lr >= 1; "
        "the smallest peak lr that diverged is 0.3."
    )
    # Each note names the LR the run reached: the cyclic schedule's peak (0.3), not its lr (0.075).
    cyclic = next(f for f in findings if "cyclic" in f.message)
    assert cyclic.numbers["divergence_lr"] == pytest.approx(0.3)
    assert "divergence starts at lr=0.3, the peak of its schedule" in cyclic.message


def test_schedule_families_in_words():
    assert family_in_words(parse("warmup(cosine(lr=0.1, total_steps=100), steps=5)")) == "warmup-cosine"
    assert family_in_words(parse("one_cycle(max_lr=0.1, total_steps=100)")) == "one-cycle"
    assert family_in_words(parse(_cyclic(0.3))) == "cyclic"


@pytest.mark.parametrize(
    ("spec", "words", "family"),
    [
        ("warmup(cosine_restarts(lr=1, period=9), steps=3)", "warmup-cosine-restarts", "warmup+cosine_restarts"),
        ("warmup(warmup(cosine(lr=1, total_steps=9), steps=2), steps=3)", "warmup-warmup", "warmup+warmup+cosine"),
        ("sequence([constant(lr=1), cosine(lr=1, total_steps=9)], boundaries=[5])", "sequence",
         "sequence+constant+cosine"),
        ("step_decay(lr=1, step_size=3)", "step-decay", "step_decay"),
        ("inverse_sqrt(lr=1, warmup_steps=3)", "inverse-sqrt", "inverse_sqrt"),
    ],
)  # fmt: skip
def test_family_in_words_is_the_records_family_outermost_with_what_a_warmup_warms(spec, words, family):
    assert schedule_family(parse(spec)) == family
    assert family_in_words(parse(spec)) == words


def test_the_old_name_of_family_in_words_still_works_and_warns():
    import lrlab.core.diagnostics as diagnostics

    with pytest.warns(DeprecationWarning, match="family_in_words"):
        assert diagnostics.schedule_family is family_in_words


@pytest.mark.parametrize(
    ("kind", "words"),
    [("lr_low", "too small"), ("update_ratio", "usual size"), ("spike", "spikes"), ("lr_audit", "schedule gives")],
)
def test_the_instruments_findings_are_named_by_what_they_found(kind, words):
    import dataclasses

    from lrlab.core.diagnostics import Finding

    configs, planned = _sweep()
    findings = [dataclasses.replace(Finding.at_step(50, kind, "step 50: ..."), run_ids=(rid,)) for rid in ("r0", "r1")]
    line = kind_summary(kind, findings, configs, planned)
    assert line.startswith("2 runs ") and words in line and "concerned" not in line
