"""Exponential moving average of a module's weights, stored as buffers so checkpoints carry it (exact resume).

Shared by the trainers of the stage packages (zero123, zero123plus)."""
from __future__ import annotations

import torch
from torch import nn


class ModuleEMA(nn.Module):
    """LDM's ``LitEma``: decay ``min(decay, (1 + n) / (10 + n))`` with n the number of updates so far."""

    def __init__(self, module: nn.Module, decay: float = 0.9999):
        super().__init__()
        self.decay = decay
        self.names = [n for n, p in module.named_parameters() if p.requires_grad]
        for i, (_, p) in enumerate(self._params(module)):
            self.register_buffer(f"shadow_{i}", p.detach().clone().float())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def _params(self, module: nn.Module):
        params = dict(module.named_parameters())
        return [(n, params[n]) for n in self.names]

    def shadows(self) -> list[torch.Tensor]:
        return [getattr(self, f"shadow_{i}") for i in range(len(self.names))]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        n = int(self.num_updates) + 1
        self.num_updates.fill_(n)
        decay = min(self.decay, (1.0 + n) / (10.0 + n))
        for shadow, (_, p) in zip(self.shadows(), self._params(module)):
            shadow.lerp_(p.detach().float(), 1.0 - decay)

    def state_for(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The module's full state dict with EMA values for the averaged parameters."""
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        for name, shadow in zip(self.names, self.shadows()):
            state[name] = shadow.to(state[name].dtype).clone()
        return state
