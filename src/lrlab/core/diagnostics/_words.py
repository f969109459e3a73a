"""The findings of one kind in one sentence, with the runs they concern in words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lrlab.core.diagnostics._common import Finding, display, peak_lr
from lrlab.core.diagnostics._decay import DECAY_RULE
from lrlab.core.grouping import Configuration
from lrlab.core.records import RunRecord, schedule_family
from lrlab.schedules import Schedule


def family_in_words(schedule: Schedule) -> str:
    """A schedule's family in words, from :func:`lrlab.core.records.schedule_family`: its
    outermost family, and for a warmup the family warmed up, hyphenated.

    >>> from lrlab.schedules import parse
    >>> family_in_words(parse("warmup(cosine(lr=0.1, total_steps=100), steps=5)"))
    'warmup-cosine'
    >>> family_in_words(parse("one_cycle(max_lr=0.1, total_steps=100)"))
    'one-cycle'
    >>> family_in_words(parse("sequence([constant(lr=1), cosine(lr=1, total_steps=9)], boundaries=[5])"))
    'sequence'
    """
    outer, *inner = schedule_family(schedule).split("+")
    names = [outer, *inner[:1]] if outer == "warmup" else [outer]
    return "-".join(names).replace("_", "-")


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _lr_words(low: float, high: float) -> str:
    return f"at peak lr {display(low)}" if low == high else f"at peak lr {display(low)}-{display(high)}"


def _group_words(
    runs: Sequence[tuple[RunRecord, float]], concerned: set[str], one: str, many: str
) -> tuple[str, bool]:
    """``runs`` (each with its peak LR) in words as far as ``concerned`` covers them:
    ``every <one>``, ``every <one> at peak lr >= X`` (or ``<= X``) when the concerned runs are
    exactly those at one end of the LR range, else a count and the LR range. The flag says
    whether the words are an "every" (the group is described exactly)."""
    hit = [(r, lr) for r, lr in runs if r.id in concerned]
    low, high = min(lr for _r, lr in hit), max(lr for _r, lr in hit)
    rest = [lr for r, lr in runs if r.id not in concerned]
    if not rest:
        return f"every {one}", True
    if all(lr < low for lr in rest):
        return f"every {one} at peak lr >= {display(low)}", True
    if all(lr > high for lr in rest):
        return f"every {one} at peak lr <= {display(high)}", True
    return f"{_plural(len(hit), one, many)} {_lr_words(low, high)}", False


def describe_runs(
    run_ids: Sequence[str],
    configs: Sequence[Configuration],
    planned_steps: Mapping[str, int] | None = None,
    max_groups: int = 3,
) -> str:
    """The runs ``run_ids`` in a few words, by optimizer, schedule family and peak LR range.

    An optimizer whose concerned runs are all of its runs (or all at one end of its LR range)
    is named once (``every adam run at peak lr >= 0.03``); otherwise each of its schedule
    families is (``every cyclic run of sgd``, ``2 step-decay runs of adam at peak lr
    0.01-0.03``). At most ``max_groups`` groups are named, the largest first; the others are
    counted. Peak LR: the largest LR a run's schedule reaches (:func:`peak_lr`).
    """
    concerned = set(run_ids)
    peaks = {c.key: peak_lr(c, planned_steps) for c in configs}
    every = [(r, peaks[c.key]) for c in configs for r in c.runs]
    if every and all(r.id in concerned for r, _lr in every):
        return "every run"
    by_opt: dict[str, list[Configuration]] = {}
    for cfg in configs:
        by_opt.setdefault(str(cfg.config.optimizer), []).append(cfg)
    groups = [g for opt, members in by_opt.items() for g in _optimizer_groups(opt, members, peaks, concerned)]
    groups.sort(key=lambda g: -g[0])
    return _joined(groups, max_groups)


def _optimizer_groups(
    opt: str, members: Sequence[Configuration], peaks: Mapping[str, float], concerned: set[str]
) -> list[tuple[int, str]]:
    """``(count, words)`` for the concerned runs of one optimizer: the optimizer at once when
    the words describe its runs exactly, else one group per schedule family."""
    runs = [(r, peaks[c.key]) for c in members for r in c.runs]
    count = sum(1 for r, _lr in runs if r.id in concerned)
    if not count:
        return []
    words, exact = _group_words(runs, concerned, f"{opt} run", f"{opt} runs")
    if exact:
        return [(count, words)]
    families: dict[str, list[tuple[RunRecord, float]]] = {}
    for cfg in members:
        families.setdefault(family_in_words(cfg.config.schedule), []).extend((r, peaks[cfg.key]) for r in cfg.runs)
    groups = []
    for family, fruns in families.items():
        fcount = sum(1 for r, _lr in fruns if r.id in concerned)
        if fcount:
            words, _exact = _group_words(fruns, concerned, f"{family} run of {opt}", f"{family} runs of {opt}")
            groups.append((fcount, words))
    return groups


def _joined(groups: Sequence[tuple[int, str]], max_groups: int) -> str:
    """The ``max_groups`` first groups' words, the others counted, joined with commas and "and"."""
    named = [words for _n, words in groups[:max_groups]]
    left = groups[max_groups:]
    if left:
        named.append(f"{_plural(sum(n for n, _w in left), 'more run')} in {_plural(len(left), 'other group')}")
    if len(named) > 1:
        return ", ".join(named[:-1]) + " and " + named[-1]
    return named[0] if named else "no run"


_KIND_SENTENCE = {
    "divergence": "{runs} diverged: {where}",
    "stuck": "{runs} look stuck, the loss flat well above the best run while the gradient stays large: {where}",
    "slow": "{runs} learn too slowly, at an LR below the best of their family: {where}",
    "unstable": "{runs} got worse late in training, the loss rising over the last third without diverging: {where}",
    "overfitting": "{runs} overfit, the validation-training gap widening to the end: {where}",
    "schedule_decay": "{runs} use a schedule whose LR falls less than {rule:g}x by the end: {where}",
    "failed": "{runs} failed: {where}",
    # the instruments' findings, made while the runs trained (each run's own line is in its notes)
    "lr_low": "{runs} trained at an LR the instruments read as too small while it ran: {where}",
    "update_ratio": "{runs} took updates far from the usual size for their weights while training: {where}",
    "spike": "{runs} had loss spikes far above their recent losses: {where}",
    "warmup": "{runs} needed a warmup they did not have: {where}",
    "lr_audit": "{runs} trained at another LR than their schedule gives: {where}",
    "sharpness": "{runs} went past the stability limit of their LR (sharpness above 2/lr): {where}",
    "eval_mode": "{runs} were evaluated with a schedule-free optimizer still in train mode: {where}",
}


def kind_summary(
    kind: str,
    findings: Sequence[Finding],
    configs: Sequence[Configuration],
    planned_steps: Mapping[str, int] | None = None,
) -> str:
    """One sentence for the findings of one ``kind``: how many runs they concern and which,
    in words (:func:`describe_runs`), with the number that matters most for the kind
    (divergence: the smallest peak LR that diverged; decay: the least decay)."""
    ids = list(dict.fromkeys(rid for f in findings for rid in f.run_ids))
    where = describe_runs(ids, configs, planned_steps)
    runs = _plural(len(ids), "run")
    rule = next((f.numbers.get("rule") for f in findings if f.numbers.get("rule")), DECAY_RULE)
    template = _KIND_SENTENCE.get(kind, "{runs} concerned: {where}")
    text = template.format(runs=runs, where=where, rule=rule)
    if kind == "divergence":
        lrs = [f.numbers["divergence_lr"] for f in findings if f.numbers.get("divergence_lr") is not None]
        if lrs:
            text += f"; the smallest peak lr that diverged is {display(min(lrs))}"
    elif kind == "schedule_decay":
        factors = [f.numbers["factor"] for f in findings if "factor" in f.numbers]
        if factors:
            text += f"; the least decay is {min(factors):.3g}x"
    elif kind == "failed" and findings:
        text += "; " + findings[0].message.split("; ", 1)[-1]
    return text + "."
