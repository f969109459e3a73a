"""``--device auto`` (the default): CUDA when torch sees one, else the CPU; runs on CUDA
where there is a GPU (skipped without one)."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from lrlab.cli import app
from lrlab.core.records import RunConfig
from lrlab.store.sqlite import Store
from lrlab.training.loop import train_run
from lrlab.training.resolve import resolve, resolve_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_is_cuda_exactly_when_torch_sees_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be cpu, cuda or auto, got 'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_one_says_what_to_use():
    with pytest.raises(ValueError, match=r"torch sees no CUDA device \(use cpu or auto\)"):
        resolve_device("cuda")


@pytest.mark.parametrize("command", ["find", "sweep", "study", "tune"])
def test_the_cli_defaults_to_auto(command):
    option = next(p for p in typer.main.get_command(app).commands[command].params if p.name == "device")
    assert option.default == "auto" and "auto (CUDA when present)" in option.help
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0 and "CUDA when present" in result.output


def test_a_run_records_the_device_auto_picked(tmp_path):
    store = Store(tmp_path / "runs.db")
    config = RunConfig(task="digits-linear", lr=0.1, epochs=1, batch_size=64,
                       task_options={"train_size": 128, "val_size": 64})  # fmt: skip
    record = train_run(config, store, "r", device="auto")
    assert store.run(record.id).extras["device"].startswith("cuda" if torch.cuda.is_available() else "cpu")


@cuda
def test_a_run_trains_on_cuda(tmp_path):
    store = Store(tmp_path / "runs.db")
    config = RunConfig(task="digits-mlp", lr=0.1, epochs=2, batch_size=64, optimizer="sgd(momentum=0.9)",
                       task_options={"train_size": 512, "val_size": 128})  # fmt: skip
    assert resolve(config, device="auto").device.type == "cuda"
    record = train_run(config, store, "gpu", device="auto")
    epochs = store.epochs(record.id)
    assert store.run(record.id).extras["device"].startswith("cuda")
    assert epochs[-1].val_loss < epochs[0].val_loss or epochs[-1].val_error < 0.5


@cuda
def test_the_python_study_runs_on_cuda(tmp_path):
    import lrlab

    x = torch.randn(160, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    result = lrlab.study(lambda: torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)),
                         (x[:128], y[:128]), (x[128:], y[128:]), name="cuda-reg", epochs=4, batch_size=16,
                         optimizers=["adam"], store=tmp_path / "runs.db")  # fmt: skip
    store = Store(result.store_path)
    assert {r.extras["device"].split(":")[0] for r in store.runs() if r.sweep in result.sweeps} == {"cuda"}
