"""examples/finetune.toml: a valid sweep of the three fine-tuning variants."""

from pathlib import Path

from lrlab.sweeps import expand, load_sweep

EXAMPLE = Path(__file__).parents[2] / "examples" / "finetune.toml"


def test_example_sweep_expands_to_three_variants_three_lrs_three_seeds():
    plans = expand(load_sweep(EXAMPLE))
    assert len(plans) == 27
    variants = {repr(p.config.lr_mult) for p in plans}
    assert variants == {"None", "{'conv*': 0.0}", "{'head.*': 10.0}"}
    assert {p.config.lr for p in plans} == {0.001, 0.003, 0.01}
    assert all(p.config.task == "digits-transfer" for p in plans)
    assert len({p.id for p in plans}) == 27
