"""Resume after the tuning process is killed (SIGKILL) or interrupted (Ctrl-C): no finished
trial is lost, none is trained twice, and the budget is met exactly."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time

import optuna
import pytest

from lrlab.store import RunStatus, Store
from lrlab.tune import tune

from .conftest import tiny_spec

pytestmark = pytest.mark.slow


def _finished(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name="killed", storage=storage)
    except KeyError:
        return []
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [t for t in study.trials if t.state in done]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_a_killed_tune_resumes_losing_and_duplicating_nothing(tmp_path, sig):
    db, storage = tmp_path / "lrlab.db", f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = tiny_spec("killed", trials=8, pruner="none", epochs=6)
    # The child says on stdout when a trial has finished, so the signal lands as soon as three
    # have (polling Optuna's database instead can lag behind a busy child until it is done).
    code = (
        "import json, sys\nfrom lrlab.store import Store\nfrom lrlab.tune import tune\n"
        "def said(event):\n"
        "    if getattr(event, 'event', None) == 'trial':\n"
        "        print('trial', flush=True)\n"
        f"tune(json.loads(sys.argv[1]), Store({str(db)!r}), storage={storage!r}, progress=said)\n"
    )
    # A shell's background job ignores SIGINT and its children inherit that; a terminal's
    # foreground job does not: give the child a terminal's Ctrl-C whatever runs the tests.
    process = subprocess.Popen([sys.executable, "-c", code, json.dumps(spec)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 300  # three trials finished, even on a loaded machine
    seen = 0
    while seen < 3 and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            line = process.stdout.readline()
            if not line:  # the child ended
                break
            seen += line.strip() == b"trial"
    # Python ignores a KeyboardInterrupt raised inside a garbage-collection callback: press
    # Ctrl-C again until the process stops, as a person would.
    stop = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < stop:
        process.send_signal(sig)
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            continue
    assert process.returncode != 0, process.stderr.read().decode()[-2000:]
    before = {t.number: (t.state, t.value, t.user_attrs["run_id"]) for t in _finished(storage)}
    assert 3 <= len(before) < 8
    store = Store(db)
    stamps = {rid: store.run(rid).finished_at for _state, _value, rid in before.values()}

    result = tune(spec, store, storage=storage, resume=True)

    after = {t.number: t for t in result.trials}
    assert sum(t.state in ("complete", "pruned", "diverged") for t in result.trials) == 8  # the budget, exactly
    for number, (_state, value, run_id) in before.items():  # nothing finished was lost or re-trained
        assert after[number].value == value
        assert store.run(run_id).finished_at == stamps[run_id]
    ids = {rid for t in result.trials for rid in t.run_ids}
    runs = store.runs(sweep="killed")
    assert {r.id for r in runs} == ids
    assert all(r.status.is_finished for r in runs)
    study = optuna.load_study(study_name="killed", storage=storage)
    failed = [t for t in study.trials if t.state is optuna.trial.TrialState.FAIL]
    assert len(failed) <= 1  # the trial in flight, queued again with the same draws
    for trial in failed:
        if not trial.params:  # interrupted before its first draw: nothing to retry
            continue
        retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == trial.number)
        # Interrupted while drawing, a trial may hold only part of its draws: the retry keeps them.
        assert trial.params.items() <= retry.params.items()
        if "run_id" in trial.user_attrs:  # it had drawn all: the same run
            assert retry.user_attrs["run_id"] == trial.user_attrs["run_id"]
        assert store.run(retry.user_attrs["run_id"]).status is RunStatus.DONE
