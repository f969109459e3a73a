"""The study's advice in the user's units: each snippet builds the schedule from the
user's own number of steps and runs as pasted (real Keras without TensorFlow, a real
Lightning Trainer, a real Hugging Face Trainer, a plain PyTorch loop)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from lrlab.schedules import parse
from lrlab.study.codegen import (
    hf_snippet,
    keras_snippet,
    lightning_snippet,
    schedule_for,
    step_template,
    torch_snippet,
)

# What a study measured over 60 steps: warmup 5%, then cosine.
MEASURED = "warmup(cosine(lr=0.1, total_steps=57), steps=3)"
STUDY_STEPS = 60


def test_schedule_for_keeps_fractions_and_lrs():
    stretched = schedule_for(MEASURED, STUDY_STEPS, 600)
    assert str(stretched) == "warmup(cosine(lr=0.1, total_steps=570), steps=30)"
    t = np.arange(61, dtype=np.float64)
    np.testing.assert_allclose(stretched(t * 10), parse(MEASURED)(t), rtol=1e-12)
    cyclic = schedule_for("cyclic(base_lr=0.01, max_lr=0.1, step_size=10)", 60, 30)
    assert str(cyclic) == "cyclic(base_lr=0.01, max_lr=0.1, step_size=5)"
    # A step count never rounds to zero in a short run.
    assert "steps=1)" in str(schedule_for(MEASURED, STUDY_STEPS, 10))
    assert step_template("constant(lr=0.1)", 60) == "'constant(lr=0.1)'"
    with pytest.raises(ValueError, match="total_steps must be >= 1"):
        schedule_for(MEASURED, STUDY_STEPS, 0)


def test_torch_snippet_computes_the_schedule_from_the_loader_and_epochs():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    loader = list(zip(x.split(4), y.split(4), strict=True))  # 10 batches
    namespace = {"model": model, "train_loader": loader, "loss_fn": torch.nn.functional.cross_entropy,
                 "epochs": 3}  # fmt: skip
    exec(torch_snippet("sgdm", MEASURED, study_steps=STUDY_STEPS), namespace)
    assert namespace["total_steps"] == 30
    expected = schedule_for(MEASURED, STUDY_STEPS, 30)
    assert namespace["schedule"] == expected
    assert namespace["optimizer"].param_groups[0]["lr"] == expected(30)


@pytest.mark.slow
def test_keras_snippet_runs_as_pasted_without_tensorflow(tmp_path):
    code = keras_snippet("adam", MEASURED, study_steps=STUDY_STEPS, kind="regression")
    assert code.index('os.environ.setdefault("KERAS_BACKEND", "torch")') < code.index("import keras")
    script = tmp_path / "user.py"
    script.write_text(
        "import numpy as np\nimport importlib.util\n"
        "assert importlib.util.find_spec('tensorflow') is None\n"
        "x_train = np.random.default_rng(0).normal(size=(40, 3)).astype('float32')\n"
        "y_train = x_train.sum(axis=1)\nbatch_size, epochs = 8, 2\n"
        + code.replace("model.compile", "import keras as _k\nmodel = _k.Sequential([_k.Input((3,)), _k.layers.Dense(1)])\n"
                       "model.compile", 1)
        + "model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0)\n"
        "print(repr(float(optimizer.learning_rate)), int(optimizer.iterations), total_steps, keras.backend.backend())\n"
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path / "keras-home")  # no keras.json naming another backend
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lr, iterations, total, backend = done.stdout.split()
    assert (int(iterations), int(total), backend) == (10, 10, "torch")
    assert float(lr) == pytest.approx(schedule_for(MEASURED, STUDY_STEPS, 10)(10), rel=1e-6)


def test_keras_snippet_names_the_tasks_loss():
    assert 'loss="mse", metrics=["mae"]' in keras_snippet("sgd", MEASURED, kind="regression")
    assert 'loss="sparse_categorical_crossentropy", metrics=["accuracy"]' in keras_snippet("sgd", MEASURED)
    assert "loss=loss_fn)" in keras_snippet("sgd", MEASURED, loss="loss_fn")


@pytest.mark.slow
def test_lightning_snippet_in_a_real_trainer(tmp_path):
    lightning = pytest.importorskip("lightning")
    code = lightning_snippet("sgdm", MEASURED, study_steps=STUDY_STEPS)
    method = code[code.index("    def configure_optimizers"):]
    header = code[: code.index("# a method")]
    source = header + textwrap.dedent("""
        import lightning as L

        class Module(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Linear(4, 1)

            def training_step(self, batch, _):
                x, y = batch
                return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)

    """) + method
    namespace: dict = {}
    exec(source, namespace)
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(48, 4), torch.randn(48))
    loader = torch.utils.data.DataLoader(data, batch_size=8)  # 6 batches
    module = namespace["Module"]()
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False,
                                default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, loader)
    optimizer = trainer.optimizers[0]
    expected = schedule_for(MEASURED, STUDY_STEPS, 18)
    assert trainer.global_step == 18
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected(18))


@pytest.mark.slow
def test_hugging_face_snippet_in_a_real_trainer(tmp_path):
    pytest.importorskip("accelerate")
    transformers = pytest.importorskip("transformers")

    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def forward(self, x, labels=None):
            out = self.net(x).squeeze(-1)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    torch.manual_seed(0)
    xs, ys = torch.randn(40, 4), torch.randn(40)
    train_dataset = [{"x": a, "labels": b} for a, b in zip(xs, ys, strict=True)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8,
                                          num_train_epochs=2, report_to=[], save_strategy="no", use_cpu=True,
                                          logging_strategy="no")  # fmt: skip
    namespace = {"model": Regressor(), "args": args, "train_dataset": train_dataset}
    exec(hf_snippet("adamw", MEASURED, study_steps=STUDY_STEPS), namespace)
    assert namespace["total_steps"] == 10
    namespace["trainer"].train()
    expected = schedule_for(MEASURED, STUDY_STEPS, 10)
    assert namespace["optimizer"].param_groups[0]["lr"] == pytest.approx(expected(10))
