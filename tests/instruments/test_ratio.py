"""The update-to-weight ratio, against a hand computation on a real optimizer step."""

from __future__ import annotations

import math

import pytest
import torch

from lrlab.instruments import Instruments, UpdateRatio


def _two_groups():
    torch.manual_seed(0)
    body, head = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(
        [{"params": body.parameters(), "lr": 0.1}, {"params": head.parameters(), "lr": 0.5}]
    )
    return body, head, opt


def test_the_ratio_of_each_group_is_its_step_over_its_weights_by_hand():
    body, head, opt = _two_groups()
    ratio = UpdateRatio()
    ratio.attach(opt)
    head(body(torch.randn(8, 4))).pow(2).mean().backward()
    before = [[p.detach().clone() for p in m.parameters()] for m in (body, head)]
    grads = [[p.grad.clone() for p in m.parameters()] for m in (body, head)]
    opt.step()
    steps, rows = ratio.take()
    assert steps == [0]
    for group, lr in enumerate((0.1, 0.5)):
        delta = math.sqrt(sum(float((lr * g).pow(2).sum()) for g in grads[group]))
        weight = math.sqrt(sum(float(w.pow(2).sum()) for w in before[group]))
        assert rows[0][group] == pytest.approx(delta / weight, rel=1e-5)


def test_every_nth_step_and_the_per_tensor_values():
    body, head, opt = _two_groups()
    ratio = UpdateRatio(every=3, per_tensor=True)
    ratio.attach(opt)
    for _ in range(7):
        opt.zero_grad()
        head(body(torch.randn(8, 4))).pow(2).mean().backward()
        opt.step()
    steps, rows = ratio.take()
    assert steps == [0, 3, 6]
    assert all(len(row) == 2 + 4 for row in rows)  # two groups, then four tensors
    ratio.detach()
    opt.step()
    assert ratio.take() == ([], [])


def test_a_high_ratio_is_a_finding_with_its_step_and_the_group_named():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=2.0)
    found = []
    panel = Instruments(on_finding=found.append).attach(opt)
    for step in range(30):
        panel.observe_step(step, 1.0)
        opt.zero_grad()
        model(torch.randn(16, 5)).pow(2).mean().backward()
        opt.step()
    series, findings = panel.take()
    assert findings == found and [f.kind for f in findings] == ["update_ratio"]
    assert (
        findings[0].step == 4
        and "group 'group0'" in findings[0].message
        and "lower the LR" in findings[0].message
    )
    assert findings[0].evidence["ratio"] > 0.3  # the first five steps judged against the early threshold
    assert series["update_ratio/group0"][0] == list(range(30))


def test_bad_settings_are_one_line_naming_what_is_allowed():
    with pytest.raises(ValueError, match="unknown instrument 'sharpnes': choose from"):
        Instruments("default,sharpnes")
    with pytest.raises(ValueError, match="every must be a whole number >= 1"):
        UpdateRatio(every=0)
    with pytest.raises(ValueError, match="needs loss_fn="):
        Instruments("sharpness").attach(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1))


def test_a_large_tensor_read_at_a_stride_estimates_the_whole_ones_ratio():
    torch.manual_seed(0)
    model = torch.nn.Linear(784, 512)  # 401,408 weights: read at a stride
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ratio = UpdateRatio()
    ratio.attach(opt)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(64, 784)).pow(2).mean().backward()
    opt.step()
    delta = sum(float((p.detach() - w).pow(2).sum()) for p, w in zip(model.parameters(), before))
    exact = math.sqrt(delta / sum(float(w.pow(2).sum()) for w in before))
    assert ratio.take()[1][0][0] == pytest.approx(exact, rel=0.02)


def _early_burst(warm: bool):
    """Steps of a chosen size: 0.2 of the weights' size for 10 steps, 1e-3 after (SGD at lr 1
    moves w by the gradient, the loss's coefficient); with ``warm`` the LR ramps up instead."""
    w = torch.nn.Parameter(torch.full((100,), 10.0))
    opt = torch.optim.SGD([w], lr=1.0)
    found = []
    panel = Instruments("warmup", on_finding=found.append).attach(opt)
    for step in range(120):
        if warm:
            opt.param_groups[0]["lr"] = min(1.0, (step + 1) / 50)
        panel.observe_step(step, 1.0)
        opt.zero_grad()
        (w.sum() * (2.0 if step < 10 else 0.01)).backward()
        opt.step()
    panel.take()
    return found


def test_a_large_early_update_without_warmup_is_a_finding_and_not_with_one():
    (finding,) = _early_burst(warm=False)
    assert finding.kind == "warmup" and finding.evidence["early_ratio"] > 0.1
    assert finding.evidence["early_ratio"] > 10 * finding.evidence["later_ratio"]
    assert "warm up the LR" in finding.message
    assert _early_burst(warm=True) == []
