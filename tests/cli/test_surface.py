"""``lrlab surface``: tables, JSON, pictures, scenarios and one-line errors with exit code 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrlab.cli.app import app

runner = CliRunner()


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["surface", *args])


def test_json_has_one_object_per_optimizer_with_the_contract_keys() -> None:
    result = _run("ravine", "--opt", "sgd(lr=0.25)", "--opt", "sgd(lr=0.05, momentum=0.9, nesterov=true)",
                  "--opt", "sgd(lr=1)", "--steps", "120", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == [
        "sgd(lr=0.25)",
        "sgd(lr=0.05, momentum=0.9, nesterov=true)",
        "sgd(lr=1)",
    ]
    gd, nag, boom = rows
    assert (
        gd["steps_to_tol"] is None
        and gd["diverged"] is False
        and gd["final_loss"] == pytest.approx(4.0, abs=0.05)
    )
    assert nag["steps_to_tol"] == 48 and nag["diverged"] is False
    assert boom["diverged"] is True and boom["steps_to_tol"] is None


def test_start_tol_and_shared_schedule_are_applied() -> None:
    result = _run("rosenbrock", "--opt", "adam(lr=0.05)", "--schedule", "cosine(lr=1.0, total_steps=50)",
                  "--start", "0,0", "--steps", "50", "--tol", "0.5", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["schedule"] == "cosine(lr=1.0, total_steps=50)"
    assert row["steps"] == 50 and row["steps_to_tol"] is not None and row["tol"] == 0.5
    assert row["lr_first"] == pytest.approx(0.05)  # the cosine's peak scaled to adam's lr
    assert row["lr_last"] == pytest.approx(0.05 * (1 + math.cos(math.pi * 49 / 50)) / 2)


def test_table_and_png(tmp_path: Path) -> None:
    out = tmp_path / "saddle.png"
    result = _run(
        "saddle", "--opt", "sgd(lr=0.1)", "--opt", "adam(lr=0.1)", "--steps", "60", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    assert "saddle, 60 steps" in result.stdout and "diverged" in result.stdout and "wrote" in result.stdout


def test_list_shows_surfaces_optimizers_and_scenarios() -> None:
    result = _run("--list")
    assert result.exit_code == 0
    for word in ("ravine", "valley", "rosenbrock", "beale", "saddle", "rastrigin", "rmsprop", "deltabardelta",
                 "ravine-story", "valley-story"):  # fmt: skip
        assert word in result.stdout


def test_scenario_json_reports_its_findings() -> None:
    result = _run("--scenario", "ravine-story", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["trajectories"]) == 6
    assert payload["findings"] and all(f["holds"] for f in payload["findings"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["himmelblau", "--opt", "sgd"], "unknown surface 'himmelblau'; valid surfaces: ravine, valley"),
        (["ravine", "--opt", "adamm(lr=0.1)"], "unknown optimizer 'adamm' (known: adadelta"),
        (
            ["ravine", "--opt", "adam(momentum=0.9)"],
            "adam() has no parameter 'momentum' (parameters: lr, betas",
        ),
        (["ravine", "--opt", "sgd", "--start", "nan,1"], "--start must be finite"),
        (["ravine", "--opt", "sgd", "--start", "1"], "--start must be two numbers"),
        (["ravine", "--opt", "sgd", "--schedule", "cosine(lr=0.1"], "bad schedule spec"),
        (["ravine", "--opt", "sgd", "--schedule", "cosine(lr=-1, total_steps=10)"], "bad schedule spec"),
        (["ravine", "--opt", "sgd", "--schedule", "bogus(lr=1)"], "bad schedule spec"),
        (
            ["ravine", "--opt", "sgd", "--opt", "adam", "--schedule", "none"] + ["--schedule", "none"] * 2,
            "give --schedule once for every optimizer or once per --opt (2), got 3",
        ),
        (["ravine", "--opt", "sgd(lr=-1)"], "Invalid learning rate"),
        (["ravine"], "no optimizer given"),
        (["ravine", "--opt", "sgd", "--steps", "0"], "--steps must be from 1 to"),
        (["ravine", "--opt", "sgd", "--out", "x.jpg"], "--out must end in one of"),
        (["--scenario", "plateau"], "valid scenarios: ravine-story, valley-story"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], message: str) -> None:
    result = _run(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def test_schedules_given_per_optimizer_are_matched_by_position() -> None:
    result = _run("valley", "--opt", "rmsprop(lr=0.2)", "--schedule", "none", "--opt", "rmsprop(lr=0.2)",
                  "--schedule", "exponential(lr=1.0, decay_rate=0.99)", "--opt", "rmsprop",
                  "--schedule", "exponential(lr=0.2, decay_rate=0.99)", "--steps", "30", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    constant, scaled, written = json.loads(result.stdout)
    assert constant["name"] == "rmsprop(lr=0.2)" and constant["schedule"] is None
    assert constant["lr_first"] == constant["lr_last"] == 0.2
    assert scaled["name"] == "rmsprop(lr=0.2) + exponential(lr=1.0, decay_rate=0.99)"
    assert scaled["lr_first"] == pytest.approx(0.2) and scaled["lr_last"] == pytest.approx(0.2 * 0.99**29)
    # Without lr in the spec the schedule is used as written: the old 'rmsprop:lr=0.2@...' run.
    assert written["lr_first"] == pytest.approx(0.2) and written["lr_last"] == pytest.approx(0.2 * 0.99**29)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("sgd:lr=0.25", '--opt "sgd(lr=0.25)"'),
        ("sgd:lr=0.05,momentum=0.9,nesterov=true", '--opt "sgd(lr=0.05, momentum=0.9, nesterov=true)"'),
        ("adam:lr=0.1,betas=(0.9,0.99)", '--opt "adam(lr=0.1, betas=[0.9, 0.99])"'),
        ("nesterov:lr=0.05", '--opt "nesterov(lr=0.05)"'),
        ("lbfgs:lr=1,line_search_fn=none", '--opt "lbfgs(lr=1, line_search_fn=None)"'),
        (
            "rmsprop:lr=0.2@exponential(lr=0.2, decay_rate=0.99)",
            '--opt "rmsprop" --schedule "exponential(lr=0.2, decay_rate=0.99)"',
        ),
        (
            "sgd:lr=0.1,momentum=0.9@cosine(lr=0.1, total_steps=300)",
            '--opt "sgd(momentum=0.9)" --schedule "cosine(lr=0.1, total_steps=300)"',
        ),
        ("sgd@cosine(lr=0.1, total_steps=300)", '--opt "sgd" --schedule "cosine(lr=0.1, total_steps=300)"'),
    ],
)
def test_the_old_form_is_one_line_showing_the_new_form(old: str, new: str) -> None:
    result = _run("ravine", "--opt", "adam(lr=0.1)", "--opt", old, "--steps", "5")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: --opt {old!r} uses the old form; write {new}"]
    assert "Traceback" not in result.output and result.stdout == ""


def test_the_new_form_the_old_form_error_shows_runs_the_same_trajectory() -> None:
    result = _run("valley", "--opt", "rmsprop", "--schedule", "exponential(lr=0.2, decay_rate=0.99)",
                  "--steps", "300", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    from lrlab.surfaces import run_scenario

    story = run_scenario("valley-story").by_label("RMSprop + exponential decay").summary()
    assert {k: v for k, v in row.items() if k not in ("name", "optimizer")} == {
        k: v for k, v in story.items() if k not in ("name", "optimizer")
    }


def test_help_has_examples() -> None:
    result = _run("--help")
    assert result.exit_code == 0 and "Examples" in result.stdout
    assert '--opt "sgd(lr=0.25)"' in result.stdout and "--schedule none" in result.stdout
