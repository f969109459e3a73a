"""Runs exported to TensorBoard and MLflow read back, through each tool's own reader, equal
to what the store holds: LR per group, momentum, loss, grad norm, epoch metrics (``val_mae``
too), instruments, findings and config."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from lrlab.export import MLflow, TensorBoard, export_runs
from lrlab.export.series import read_export, scalars
from lrlab.export.tensorboard_writer import run_folder
from lrlab.store.sqlite import Store

MAX = np.finfo(float).max


def read_tensorboard(folder: Path) -> tuple[dict[str, tuple[list[int], list[float]]], dict[str, list[str]]]:
    """Every scalar and text of one run folder, through TensorBoard's own EventAccumulator."""
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    values, texts = {}, {}
    for tag in acc.Tags()["tensors"]:
        events = acc.Tensors(tag)
        arrays = [tensor_util.make_ndarray(e.tensor_proto) for e in events]
        if tag.endswith("/text_summary"):
            texts[tag.removesuffix("/text_summary")] = [a.item().decode() for a in arrays]
        else:
            values[tag] = ([e.step for e in events], [float(a) for a in arrays])
    return values, texts


def expected(store: Store, run_id: str) -> dict[str, tuple[list[int], list[float]]]:
    """What the store holds for the run, by exported name."""
    run = read_export(store, store.run(run_id))
    return {s.name: (s.steps.tolist(), s.values.tolist()) for s in scalars(run)}


def same(got: list[float], want: list[float], *, mlflow: bool = False) -> bool:
    want_array = np.asarray(want, dtype=float)
    if mlflow:  # MLflow stores an infinite value as the largest float of its sign
        want_array = np.where(np.isinf(want_array), np.sign(want_array) * MAX, want_array)
    return np.array_equal(np.asarray(got, dtype=float), want_array, equal_nan=True)


def test_every_stored_run_reads_back_from_tensorboard_equal_to_the_store(filled, tmp_path):
    path, run_id = filled
    store = Store(path, readonly=True)
    assert export_runs(store, TensorBoard(tmp_path)) == 3
    for record in store.runs():
        values, texts = read_tensorboard(run_folder(tmp_path, record))
        want = expected(store, record.id)
        assert {"lr/group0", "loss", "grad_norm"} <= set(want)
        assert ("epoch/train_loss" in want) == (record.status.value == "done")
        for name, (steps, numbers) in want.items():
            assert values[name][0] == steps and same(values[name][1], numbers), name
        config = json.loads(texts["config"][0].strip("`\n"))
        assert config == record.config.to_dict()
        assert texts["findings"]
    tracked, _ = read_tensorboard(run_folder(tmp_path, store.run(run_id)))
    # two param groups with their own LRs, SGD's momentum, the task's own metric
    assert tracked["lr/group0"][1][0] == 0.05 and tracked["lr/group1"][1][0] == 0.02
    assert set(tracked["momentum"][1]) == {0.9}
    assert len(tracked["epoch/val_mae"][1]) == 3 and tracked["epoch/val_mae"][0] == [8, 16, 24]
    assert tracked["final/val_mae"][1] == [tracked["epoch/val_mae"][1][-1]]
    hparams = read_hparams(run_folder(tmp_path, store.run(run_id)))
    # torch's SummaryWriter writes a bool hparam as a number (as it does nesterov's)
    assert hparams["objective"] == "val_mae" and hparams["objective_higher_is_better"] == 0


def read_hparams(folder: Path) -> dict[str, object]:
    """The run's hparams as TensorBoard's hparams plugin reads them (its session start info)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for name, value in start.hparams.items()}  # fmt: skip


def test_a_diverged_run_keeps_its_non_finite_loss_in_tensorboard(filled, tmp_path):
    path, _ = filled
    store = Store(path, readonly=True)
    diverged = store.sweep_runs("export-sweep", status="diverged")
    assert len(diverged) == 1
    export_runs(store, TensorBoard(tmp_path), ids=[diverged[0].id])
    values, _ = read_tensorboard(run_folder(tmp_path, diverged[0]))
    loss = np.asarray(values["loss"][1])
    assert not np.all(np.isfinite(loss)) or loss.max() > 4 * loss[0]  # what the divergence rule saw


def test_exporting_again_replaces_the_run_instead_of_doubling_it(filled, tmp_path):
    path, run_id = filled
    store = Store(path, readonly=True)
    for _ in range(2):
        export_runs(store, TensorBoard(tmp_path), ids=[run_id])
    folder = run_folder(tmp_path, store.run(run_id))
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # nothing partial left beside it
    values, _ = read_tensorboard(folder)
    assert len(values["loss"][0]) == store.step_count(run_id) == 24


def mlflow_run(client: MlflowClient, run_id: str):
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`lrlab_run_id` = '{run_id}'",
    )
    assert len(found) == 1, f"{len(found)} MLflow runs for {run_id}"
    return found[0]


@pytest.fixture(scope="module")
def mlflow_export(filled, tmp_path_factory):
    path, _ = filled
    folder = tmp_path_factory.mktemp("mlflow")
    writer = MLflow(folder)
    store = Store(path, readonly=True)
    export_runs(store, writer)
    export_runs(store, writer, sweep="export-sweep")  # again: replaced, not doubled
    return writer


@pytest.mark.slow  # an MLflow SQLite store is made (its migrations take seconds)
def test_every_stored_run_reads_back_from_mlflow_equal_to_the_store(filled, mlflow_export):
    path, run_id = filled
    store = Store(path, readonly=True)
    client = MlflowClient(tracking_uri=mlflow_export.uri)
    for record in store.runs():
        found = mlflow_run(client, record.id)
        assert found.data.tags["lrlab_status"] == record.status.value
        assert found.data.params["lr"] == str(record.config.lr)
        assert found.data.params["schedule"] == str(record.config.schedule)
        for name, (steps, numbers) in expected(store, record.id).items():
            history = sorted(client.get_metric_history(found.info.run_id, name), key=lambda m: m.step)
            assert [m.step for m in history] == steps, name
            assert same([m.value for m in history], numbers, mlflow=True), name
        findings = client.download_artifacts(found.info.run_id, "findings.txt")
        assert Path(findings).read_text().strip()
    tracked = mlflow_run(client, run_id)
    assert tracked.data.metrics["final/val_mae"] == store.epochs(run_id)[-1].metrics["val_mae"]
    assert tracked.data.params["objective"] == "val_mae"  # which metric the task is judged by
    assert tracked.data.params["objective_higher_is_better"] == "False"
    assert tracked.info.status == "FINISHED"


@pytest.mark.slow  # an MLflow SQLite store is made (its migrations take seconds)
def test_the_experiment_is_the_sweep(mlflow_export):
    client = MlflowClient(tracking_uri=mlflow_export.uri)
    names = {e.name for e in client.search_experiments()}
    assert {"export-sweep", "reg"} <= names


@pytest.mark.slow  # an MLflow SQLite store is made (its migrations take seconds)
def test_a_tracked_run_exports_live_equal_to_what_it_stored(tmp_path, train):
    store = Store(tmp_path / "live.db")
    board, flow = TensorBoard(tmp_path / "tb"), MLflow(tmp_path / "ml")
    run_id = train(store, [board, flow], name="live")
    want = expected(store, run_id)
    values, texts = read_tensorboard(run_folder(tmp_path / "tb", store.run(run_id)))
    client = MlflowClient(tracking_uri=flow.uri)
    found = mlflow_run(client, run_id)
    for name, (steps, numbers) in want.items():
        assert values[name][0] == steps and same(values[name][1], numbers), name
        history = sorted(client.get_metric_history(found.info.run_id, name), key=lambda m: m.step)
        assert [m.step for m in history] == steps and same([m.value for m in history], numbers), name
    assert len(values["epoch/val_mae"][1]) == 3 and "findings" in texts
    assert found.info.status == "FINISHED" and found.data.tags["lrlab_status"] == "done"


class Broken:
    """An exporter whose tool fails (a full disk, a server down)."""

    def begin(self, record):
        raise OSError("no space left on device")


def test_a_failing_exporter_never_stops_the_run(tmp_path, caplog, train):
    store = Store(tmp_path / "broken.db")
    with caplog.at_level(logging.WARNING, logger="lrlab.export"):
        run_id = train(store, [Broken()], name="broken")
    assert store.run(run_id).status.value == "done" and store.step_count(run_id) == 24
    assert "export to" in caplog.text and "no space left on device" in caplog.text


@pytest.mark.slow  # an MLflow SQLite store is made (its migrations take seconds)
def test_instruments_and_findings_reach_both_tools_equal_to_the_store(filled, mlflow_export, tmp_path):
    """The tracked run's instruments (update ratio and LR audit per group, on by default) and
    the findings they made (its schedule never stepped), as the store holds them, read back
    from TensorBoard and MLflow."""
    path, run_id = filled
    store = Store(path, readonly=True)
    instruments, findings = store.instruments(run_id), store.findings(run_id)
    assert {"update_ratio/group0", "lr_audit/group1"} <= set(instruments)
    assert {f.kind for f in findings} == {"lr_audit"}
    export_runs(store, TensorBoard(tmp_path), ids=[run_id])
    values, texts = read_tensorboard(run_folder(tmp_path, store.run(run_id)))
    client = MlflowClient(tracking_uri=mlflow_export.uri)
    found = mlflow_run(client, run_id)
    for name, series in instruments.items():
        assert values[f"instruments/{name}"][0] == list(series.steps)
        assert same(values[f"instruments/{name}"][1], list(series.values))
        history = sorted(
            client.get_metric_history(found.info.run_id, f"instruments/{name}"), key=lambda m: m.step
        )
        assert [m.step for m in history] == list(series.steps)
        assert same([m.value for m in history], list(series.values), mlflow=True)
    board_text = texts["findings"][0]
    mlflow_text = Path(client.download_artifacts(found.info.run_id, "findings.txt")).read_text()
    for finding in findings:
        line = f"step {finding.step} [{finding.kind}, {finding.severity}] {finding.message}"
        assert line in board_text and line in mlflow_text
    assert len(board_text.splitlines()) == len(findings)


def test_tensorboards_scalars_dashboard_reads_every_series(filled, tmp_path):
    """The data provider behind TensorBoard's scalar dashboard (not only the raw event reader)
    lists the exported series as scalars, with the store's values."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    path, run_id = filled
    store = Store(path, readonly=True)
    export_runs(store, TensorBoard(tmp_path), ids=[run_id])
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    scalars_read = provider.read_scalars(
        context.RequestContext(), experiment_id="", plugin_name="scalars", downsample=10_000
    )
    [(_run, series)] = scalars_read.items()
    for name, (steps, numbers) in expected(store, run_id).items():
        assert [d.step for d in series[name]] == steps
        assert same([d.value for d in series[name]], numbers), name
