"""K copies of one architecture as stacked tensors, with one forward for all of them.

Two ways to run the members at once:

- ``"bmm"``: a ``Linear`` or a ``Sequential`` of ``Linear`` layers and element-wise
  activations is run with batched matrix products (``torch.baddbmm``), the input batch
  shared by every member. This is the fast path for the digits linear and MLP tasks.
- ``"vmap"``: any other module, with ``torch.func`` (``stack_module_state``,
  ``functional_call``, ``vmap``). A module that vmap cannot batch (dropout, in-place
  buffer updates, some recurrent kernels) fails :meth:`StackedModel.probe`, and the
  caller trains its runs one by one instead.

The stacked parameters are leaf tensors of shape ``(K, *shape)``; ``forward`` returns
``(K, batch, ...)`` outputs and ordinary autograd gives every member its own gradient.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["ELEMENTWISE", "StackedModel", "stack_models"]

# Modules that act element by element, so they apply to (K, batch, features) unchanged.
ELEMENTWISE = (
    nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Softplus, nn.Identity,
)  # fmt: skip


def _bmm_layers(model: nn.Module) -> list[nn.Module] | None:
    layers = [model] if isinstance(model, nn.Linear) else list(model.children())
    if not isinstance(model, (nn.Linear, nn.Sequential)) or not any(isinstance(m, nn.Linear) for m in layers):
        return None
    if any(not isinstance(m, (nn.Linear, *ELEMENTWISE)) for m in layers):
        return None
    if any(True for _ in model.buffers()):
        return None
    return layers


def _checked_layers(models: Sequence[nn.Module], mode: str) -> list[nn.Module] | None:
    """The first model's layers for the bmm forward (None: vmap), once the models and
    ``mode`` are checked (``ValueError`` naming what cannot be stacked)."""
    if not models:
        raise ValueError("models must not be empty")
    if mode not in ("auto", "bmm", "vmap"):
        raise ValueError(f"mode must be auto, bmm or vmap, got {mode!r}")
    template = models[0]
    if any(not p.requires_grad for p in template.parameters()):
        raise ValueError("models with frozen parameters are not vectorised")
    layers = _bmm_layers(template)
    if mode == "bmm" and layers is None:
        raise ValueError(f"mode 'bmm' needs a Linear or a Sequential of Linear/activations, got {template}")
    return layers


def _vmapped(base: nn.Module) -> Callable[..., Tensor]:
    """``base``'s forward mapped over stacked parameters and buffers (the batch shared)."""
    from torch.func import functional_call, vmap

    def call(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(base, (params, buffers), (x,))

    return vmap(call, in_dims=(0, 0, None))


class StackedModel:
    """The members' parameters, stacked, and a forward over all members at once."""

    def __init__(self, models: Sequence[nn.Module], mode: str = "auto") -> None:
        layers = _checked_layers(models, mode)
        template = models[0]
        self.mode = "bmm" if layers is not None and mode != "vmap" else "vmap"
        self.template = copy.deepcopy(template)
        self.names = [name for name, _ in template.named_parameters()]
        with torch.no_grad():
            self.params = [
                torch.stack([dict(m.named_parameters())[name].detach() for m in models]).requires_grad_()
                for name in self.names
            ]
            self.buffer_names = [name for name, _ in template.named_buffers()]
            self.buffers = [
                torch.stack([dict(m.named_buffers())[name].detach() for m in models])
                for name in self.buffer_names
            ]
        self._layers = layers
        self._vmapped = _vmapped(self.template) if self.mode == "vmap" else None

    @property
    def members(self) -> int:
        return int(self.params[0].shape[0])

    def train(self, mode: bool = True) -> None:
        self.template.train(mode)

    def forward(self, inputs: Tensor) -> Tensor:
        """Outputs of every member on the shared batch ``inputs``: ``(K, batch, ...)``."""
        if self._layers is not None and self.mode == "bmm":
            return self._forward_bmm(inputs)
        assert self._vmapped is not None
        params = dict(zip(self.names, self.params))
        buffers = dict(zip(self.buffer_names, self.buffers))
        return self._vmapped(params, buffers, inputs)

    __call__ = forward

    def _forward_bmm(self, inputs: Tensor) -> Tensor:
        # Activations are kept feature-major, (K, features, batch): each layer is then
        # W @ a with the weights in their own (K, out, in) layout, so that autograd hands
        # back contiguous weight gradients (a transposed weight would give transposed
        # gradients, and every optimizer op on them a slow strided pass).
        assert self._layers is not None
        by_name = dict(zip(self.names, self.params))
        hidden = inputs.reshape(inputs.shape[0], -1).T
        shared = True  # the first layer's input is the same for every member
        for index, layer in enumerate(self._layers):
            if isinstance(layer, nn.Linear):
                prefix = "" if isinstance(self.template, nn.Linear) else f"{index}."
                weight = by_name[prefix + "weight"]
                bias = by_name.get(prefix + "bias")
                if shared:
                    # The shared batch, broadcast to every member without a copy.
                    hidden = hidden.expand(weight.shape[0], *hidden.shape)
                    shared = False
                if bias is not None:
                    hidden = torch.baddbmm(bias.unsqueeze(2), weight, hidden)
                else:
                    hidden = torch.bmm(weight, hidden)
            else:
                hidden = layer(hidden)
        return hidden.transpose(1, 2)

    @torch.no_grad()
    def select(self, index: Tensor) -> None:
        """Keep only the members ``index`` (a ``(k,)`` long tensor)."""
        self.params = [p.detach()[index].requires_grad_() for p in self.params]
        self.buffers = [b[index] for b in self.buffers]

    @torch.no_grad()
    def member(self, k: int) -> nn.Module:
        """Member ``k`` as an ordinary module (a copy of its weights)."""
        module = copy.deepcopy(self.template)
        for name, tensor in zip(self.names, self.params):
            module.get_parameter(name).copy_(tensor[k])
        for name, tensor in zip(self.buffer_names, self.buffers):
            module.get_buffer(name).copy_(tensor[k])
        return module

    def probe(self, inputs: Tensor, loss: Callable[[Tensor], Tensor]) -> None:
        """Run one forward and backward on ``inputs``; raises what vmap or autograd raise.

        ``loss`` maps the ``(K, batch, ...)`` outputs to ``(K,)`` losses.
        """
        values = loss(self.forward(inputs))
        if values.shape != (self.members,):
            raise ValueError(f"the stacked loss has shape {tuple(values.shape)}, expected ({self.members},)")
        grads = torch.autograd.grad(values.sum(), self.params, allow_unused=True)
        if any(g is None for g in grads):
            raise ValueError("some parameters get no gradient through the stacked forward")


def stack_models(models: Sequence[nn.Module], mode: str = "auto") -> StackedModel:
    """Stack ``models`` (same architecture, on one device) into a :class:`StackedModel`."""
    return StackedModel(models, mode)
