"""Gradual unfreezing (Howard & Ruder, ULMFiT, 2018): train the last layer group first,
then unfreeze one more group, going down towards the input, every ``every`` epochs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lrlab.finetune._patterns import check_patterns, matches, top_level_layers

__all__ = ["GradualUnfreezer"]


class GradualUnfreezer:
    """Unfreeze one layer group more every ``every`` epochs.

    ``groups`` lists layer groups in the order they are unfrozen, each a list of name
    patterns (as in :func:`~lrlab.finetune.param_groups`: ``"head"`` covers ``head.*``).
    By default they are the model's top-level children that own parameters, the last
    (output side) first. At epoch ``e`` (1-based) the first
    ``min(len(groups), 1 + (e - 1) // every)`` groups train; the constructor freezes
    the others (``requires_grad=False``). Parameters in no group are left as they are.

    The frozen parameters must already be in the optimizer for unfreezing to take effect:
    build it from :func:`~lrlab.finetune.param_groups` (which keeps frozen parameters in
    their groups) or from ``model.parameters()``.

    ``on_epoch_start(epoch)`` depends only on ``epoch``, so a resumed run that calls it
    with its first epoch gets every group that was due.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
        >>> unfreezer = GradualUnfreezer(model, every=2)
        >>> unfreezer.groups
        [['2'], ['0']]
        >>> [p.requires_grad for p in model.parameters()]
        [False, False, True, True]
        >>> unfreezer.on_epoch_start(1), unfreezer.on_epoch_start(2), unfreezer.on_epoch_start(3)
        ([], [], ['0.weight', '0.bias'])
    """

    def __init__(self, model: nn.Module, every: int, groups: Sequence[Sequence[str]] | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1 (epochs), got {every!r}")
        self.model = model
        self.every = every
        self._params = dict(model.named_parameters())
        if groups is None:
            layers = list(reversed(top_level_layers(model)))
            self.groups = [[child or "<root>"] for child, _ in layers]
            members = [names for _, names in layers]
        else:
            if isinstance(groups, str) or not groups:
                raise ValueError(f"groups must be a non-empty list of lists of name patterns, got {groups!r}")
            self.groups = [check_patterns(f"groups[{i}]", g) for i, g in enumerate(groups)]
            members = [self._members(i, g) for i, g in enumerate(self.groups)]
        if not members:
            raise ValueError(f"model {type(model).__name__} has no parameters to unfreeze")
        self._members_of = members
        for names in members[1:]:
            for name in names:
                self._params[name].requires_grad_(False)

    def _members(self, index: int, patterns: list[str]) -> list[str]:
        names = [n for n in self._params if any(matches(n, p) for p in patterns)]
        if not names:
            raise ValueError(f"groups[{index}]: {patterns!r} matches no parameter of the model")
        return names

    def trainable_groups(self, epoch: int) -> int:
        """How many groups train at ``epoch`` (1-based)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"epoch must be an integer >= 1, got {epoch!r}")
        return min(len(self._members_of), 1 + (epoch - 1) // self.every)

    def on_epoch_start(self, epoch: int) -> list[str]:
        """Unfreeze the groups due at ``epoch`` (1-based); return the parameter names
        that were frozen and train from now on."""
        now: list[str] = []
        for names in self._members_of[: self.trainable_groups(epoch)]:
            for name in names:
                param = self._params[name]
                if not param.requires_grad:
                    param.requires_grad_(True)
                    now.append(name)
        return now
