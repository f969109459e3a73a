"""param_groups: multipliers from rules and layer decay, weight decay, freezing, errors."""

import copy
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lrlab.finetune import param_groups
from lrlab.schedules import constant, cosine
from lrlab.torch import LRScheduler


def by_name(groups):
    return {row.name: row for row in groups.rows}


def test_rule_multiplies_head_and_group_lr_is_base_times_mult(small):
    groups = param_groups(small, 0.01, rules={"head.*": 10.0})
    rows = by_name(groups)
    assert rows["head.weight"].lr_mult == 10.0
    assert rows["body.weight"].lr_mult == 1.0
    for group in groups:
        assert group["lr"] == pytest.approx(0.01 * group["lr_mult"])
    # every parameter exactly once
    names = [n for g in groups for n in g["names"]]
    assert sorted(names) == sorted(n for n, _ in small.named_parameters())
    assert sum(len(g["params"]) for g in groups) == len(list(small.parameters()))


def test_module_name_pattern_covers_its_parameters(small):
    rows = by_name(param_groups(small, 0.1, rules={"stem": 0.5}))
    assert {n for n, r in rows.items() if r.lr_mult == 0.5} == {
        "stem.0.weight",
        "stem.0.bias",
        "stem.1.weight",
        "stem.1.bias",
    }


def test_layer_decay_gives_deeper_layers_higher_lr(small):
    rows = by_name(param_groups(small, 1.0, layer_decay=0.5))
    assert rows["head.weight"].lr_mult == 1.0
    assert rows["body.weight"].lr_mult == 0.5
    assert rows["stem.0.weight"].lr_mult == 0.25
    assert rows["stem.1.bias"].layer == "stem"


def test_rules_multiply_layer_decay(small):
    rows = by_name(param_groups(small, 1.0, rules={"body": 4.0}, layer_decay=0.5))
    assert rows["body.weight"].lr_mult == 2.0


def test_explicit_layers_bottom_first(small):
    rows = by_name(param_groups(small, 1.0, layer_decay=0.1, layers=["stem", "body", "head"]))
    assert rows["stem.1.weight"].lr_mult == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"layers: parameters 'head.weight', 'head.bias' are in no layer"):
        param_groups(small, 1.0, layer_decay=0.1, layers=["stem", "body"])
    with pytest.raises(ValueError, match="in both 'body' and 'b\\*'"):
        param_groups(small, 1.0, layer_decay=0.1, layers=["stem", "body", "b*", "head"])


def test_no_weight_decay_on_biases_and_norms(small):
    groups = param_groups(small, 0.1, weight_decay=0.05)
    rows = by_name(groups)
    assert rows["body.weight"].weight_decay == 0.05
    assert rows["stem.0.weight"].weight_decay == 0.05
    assert rows["body.bias"].weight_decay == 0.0
    assert rows["stem.1.weight"].weight_decay == 0.0  # BatchNorm scale
    assert rows["stem.1.bias"].weight_decay == 0.0
    for g in groups:
        assert len({by_name(groups)[n].weight_decay for n in g["names"]}) == 1


def test_weight_decay_none_leaves_the_optimizer_setting(small):
    groups = param_groups(small, 0.1, no_decay=("bias", "norm"))
    opt = torch.optim.AdamW(groups, lr=0.1, weight_decay=0.3)
    decays = {n: g["weight_decay"] for g in opt.param_groups for n in g["names"]}
    assert decays["body.weight"] == 0.3
    assert decays["body.bias"] == 0.0


def test_freeze_keeps_parameters_in_groups_without_grad(small):
    groups = param_groups(small, 0.1, freeze=["stem.*", "body"])
    rows = by_name(groups)
    assert rows["stem.0.weight"].frozen and rows["body.bias"].frozen
    assert not rows["head.weight"].frozen
    assert not small.body.weight.requires_grad and small.head.weight.requires_grad
    assert sum(len(g["params"]) for g in groups) == len(list(small.parameters()))
    dropped = param_groups(small, 0.1, freeze=["stem.*", "body"], keep_frozen=False)
    assert [n for g in dropped for n in g["names"]] == ["head.weight", "head.bias"]


def test_frozen_parameters_do_not_move_under_a_real_optimizer(small):
    groups = param_groups(small, 0.1, rules={"head": 10.0}, freeze=["stem", "body"], weight_decay=0.1)
    opt = torch.optim.AdamW(groups, lr=0.1)
    before = {n: p.detach().clone() for n, p in small.named_parameters()}
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 3, (16,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(small(x), y).backward()
        opt.step()
    for name, p in small.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == name.startswith("head"), name


def test_sgd_step_size_scales_with_lr_mult():
    # One plain SGD step moves a parameter by lr * lr_mult * grad.
    model = nn.Sequential()
    model.add_module("body", nn.Linear(3, 1, bias=False))
    model.add_module("head", nn.Linear(1, 1, bias=False))
    opt = torch.optim.SGD(param_groups(model, 0.01, rules={"head": 10.0}), lr=0.01)
    sched = LRScheduler(opt, constant(0.01))
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.ones(1, 3)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    sched.step()
    for p, b, g, mult in zip(model.parameters(), before, grads, [1.0, 10.0]):
        assert torch.allclose(b - p.detach(), 0.01 * mult * g)


def test_scheduler_multiplies_schedule_and_survives_resume(small):
    schedule = cosine(0.05, total_steps=20)

    def build():
        torch.manual_seed(0)
        model = type(small)()
        groups = param_groups(model, 0.05, rules={"head.*": 10.0}, layer_decay=0.5)
        opt = torch.optim.SGD(groups, lr=0.05, momentum=0.9)
        return model, opt, LRScheduler(opt, schedule)

    def train(model, opt, sched, steps):
        for _ in range(steps):
            opt.zero_grad()
            x = torch.linspace(-1, 1, 32).reshape(2, 1, 4, 4)
            nn.functional.cross_entropy(model(x), torch.tensor([0, 2])).backward()
            opt.step()
            sched.step()

    model, opt, sched = build()
    mults = [g["lr_mult"] for g in opt.param_groups]
    train(model, opt, sched, 7)
    assert sched.get_last_lr() == pytest.approx([schedule(7) * m for m in mults])
    saved = copy.deepcopy({"opt": opt.state_dict(), "sched": sched.state_dict(), "model": model.state_dict()})
    train(model, opt, sched, 5)
    expected = sched.get_last_lr()

    model2, opt2, sched2 = build()
    for g in opt2.param_groups:  # the checkpoint, not the rebuilt groups, decides
        g["lr_mult"] = 1.0
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert [g["lr_mult"] for g in opt2.param_groups] == mults
    train(model2, opt2, sched2, 5)
    assert sched2.get_last_lr() == pytest.approx(expected)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b)


def test_checkpoint_loads_with_weights_only(tmp_path, small):
    opt = torch.optim.SGD(param_groups(small, 0.1, rules={"head": 10.0}), lr=0.1)
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    state = torch.load(tmp_path / "opt.pt", weights_only=True)
    assert [g["lr_mult"] for g in state["param_groups"]] == [1.0, 1.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"rules": {"neck.*": 2.0}}, r"rules: 'neck.\*' matches no parameter", id="dead-rule"),
        pytest.param(
            {"rules": {"head.*": 10.0, "*.weight": 2.0}},
            r"parameter 'head.weight' is matched by 'head.\*' \(x10\) and '\*.weight' \(x2\)",
            id="conflict",
        ),
        pytest.param({"freeze": ["tail"]}, "freeze: 'tail' matches no parameter", id="dead-freeze"),
        pytest.param({"rules": {"head": -1.0}}, r"rules\['head'\] must be a finite number >= 0", id="neg"),
        pytest.param({"rules": {"head": math.nan}}, "must be a finite number", id="nan"),
        pytest.param({"layer_decay": 1.5}, r"layer_decay must be in \(0, 1\]", id="decay>1"),
        pytest.param({"layer_decay": 0.0}, r"layer_decay must be in \(0, 1\]", id="decay0"),
        pytest.param({"weight_decay": -0.1}, "weight_decay must be", id="neg-wd"),
        pytest.param({"freeze": [3]}, "freeze must hold non-empty name patterns", id="bad-freeze"),
        pytest.param({"rules": ["head"]}, "rules must map name patterns", id="rules-list"),
    ],
)
def test_bad_input_is_a_value_error_naming_it(small, kwargs, message):
    with pytest.raises(ValueError, match=message):
        param_groups(small, 0.1, **kwargs)


def test_same_multiplier_from_two_rules_is_fine(small):
    rows = by_name(param_groups(small, 0.1, rules={"head.*": 10.0, "head.bias": 10.0, "stem.*": 0.5}))
    assert rows["head.bias"].lr_mult == 10.0
    assert rows["head.bias"].rule == "head.*"
    assert rows["stem.1.bias"].lr_mult == 0.5


def test_describe_lists_every_parameter(small):
    text = param_groups(small, 0.01, rules={"head.*": 10.0}, freeze=["stem"], weight_decay=1e-4).describe()
    lines = text.splitlines()
    assert lines[0].split() == [
        "parameter",
        "shape",
        "group",
        "lr_mult",
        "lr",
        "weight_decay",
        "frozen",
        "why",
    ]
    head = next(line for line in lines if line.startswith("head.weight "))
    assert head.split() == ["head.weight", "3x6", "2", "10", "0.1", "0.0001", "no", "rule", "head.*"]
    stem = next(line for line in lines if line.startswith("stem.1.bias "))
    assert stem.split()[3:7] == ["1", "0.01", "0", "yes"]
    assert lines[-1] == "4 param groups, 8 parameters (4 frozen), base_lr 0.01"


@st.composite
def mlp_and_rules(draw):
    widths = draw(st.lists(st.integers(1, 4), min_size=2, max_size=6))
    model = nn.Sequential(*[nn.Linear(a, b) for a, b in itertools.pairwise(widths)])
    layers = [str(i) for i in range(len(widths) - 1)]
    chosen = draw(st.lists(st.sampled_from(layers), unique=True, max_size=len(layers)))
    rules = {f"{name}.*": draw(st.sampled_from([0.0, 0.1, 2.0, 10.0])) for name in chosen}
    decay = draw(st.none() | st.sampled_from([0.25, 0.5, 1.0]))
    return model, rules, decay


@settings(max_examples=60, deadline=None)
@given(mlp_and_rules(), st.floats(1e-5, 1.0))
def test_every_parameter_gets_rule_times_decay_power(case, base_lr):
    model, rules, decay = case
    groups = param_groups(model, base_lr, rules=rules, layer_decay=decay)
    n_layers = len(model)
    seen = []
    for group in groups:
        assert group["lr"] == pytest.approx(base_lr * group["lr_mult"])
        for name in group["names"]:
            layer = name.split(".")[0]
            depth = n_layers - 1 - int(layer)
            expected = rules.get(f"{layer}.*", 1.0) * (decay**depth if decay else 1.0)
            assert group["lr_mult"] == pytest.approx(expected)
            seen.append(name)
    assert sorted(seen) == sorted(n for n, _ in model.named_parameters())
    # groups are distinct (multiplier, weight decay) pairs
    keys = [(g["lr_mult"], g.get("weight_decay")) for g in groups]
    assert len(keys) == len(set(keys))
    # and build a real optimizer
    torch.optim.SGD(groups, lr=base_lr)


def test_parameters_on_the_model_itself_are_the_deepest_layer(small):
    small.register_parameter("scale", nn.Parameter(torch.ones(1)))
    groups = param_groups(small, 1.0, layer_decay=0.5)
    rows = by_name(groups)
    assert rows["scale"].lr_mult == 0.125  # below stem, body, head
    assert rows["scale"].layer == ""
    assert "layer <root>" in groups.describe()


def test_top_level_export_is_the_same_function():
    import lrlab

    assert lrlab.param_groups is param_groups
    assert "param_groups" in lrlab.__all__


def test_several_dead_patterns_are_all_named(small):
    with pytest.raises(
        ValueError, match=r"rules: 'neck', 'tail' match no parameter \(the model has: stem.0.weight,"
    ):
        param_groups(small, 0.1, rules={"neck": 2.0, "head": 3.0, "tail": 2.0})
