"""Bilevel training of the relaxed network (Liu et al. 2019, DARTS, section 2.3 and Algorithm 1).

The weights ``w`` minimize the training loss on one half of the training rows; the architecture
weights ``alpha`` minimize the validation loss on the other half (plus, hardware-aware, the cost
penalty), alternating one step each:

- first order (``order=1``): ``grad_alpha L_val(w, alpha)``, as if ``w`` were optimal already;
- second order (``order=2``): the gradient at the one-step unrolled weights
  ``w' = w - xi grad_w L_train(w, alpha)``, ``grad_alpha L_val(w', alpha) - xi (grad_alpha L_train(w+,
  alpha) - grad_alpha L_train(w-, alpha)) / (2 eps)`` with ``w+- = w +- eps grad_w' L_val(w', alpha)``,
  ``eps = 0.01 / ||grad_w' L_val||``: the finite-difference Hessian-vector product of Liu et al.
  (their equation 8), ``xi`` the weights' learning rate.

``w``: SGD with momentum 0.9, weight decay 3e-4, gradients clipped to norm 5, cosine learning rate
from 0.025 to 0.001 (per epoch); ``alpha``: Adam at 3e-4, betas (0.5, 0.999), weight decay 1e-3: the
paper's settings.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tinyevo.hardware.limits import LIMITED_METRICS, Constraints

FINITE_DIFFERENCE = 0.01  # Liu et al.'s eps numerator


class CostPenalty:
    """``weight * sum over set limits of relu(E[metric] / limit - (1 - margin))``: pushes the expected
    cost of the target network (``cost_of(net)``: MACs, flash, peak SRAM) below each limit, nothing
    once under it."""

    def __init__(self, cost_of, constraints: Constraints | None, weight: float, margin: float):
        limits = {} if constraints is None else constraints.limits()
        self.cost_of, self.weight, self.margin = cost_of, float(weight), float(margin)
        self.limits = {LIMITED_METRICS[name]: float(value) for name, value in limits.items()
                       if LIMITED_METRICS[name] in ("macs", "flash_bytes", "peak_sram_bytes")}

    @property
    def active(self) -> bool:
        return bool(self.limits) and self.weight > 0

    def expected(self, net) -> dict[str, float]:
        """The expected figures of the limited metrics (for the progress record)."""
        with torch.no_grad():
            cost = self.cost_of(net)
        return {metric: float(cost[metric]) for metric in self.limits}

    def __call__(self, net) -> torch.Tensor:
        cost = self.cost_of(net)
        terms = [F.relu(cost[metric] / limit - (1 - self.margin)) for metric, limit in self.limits.items()]
        return self.weight * sum(terms)


def cosine_lr(epoch: int, epochs: int, high: float, low: float) -> float:
    return low + 0.5 * (high - low) * (1 + math.cos(math.pi * epoch / epochs))


def weight_step(net, optimizer, x, y, clip: float) -> float:
    """One SGD step of ``w`` on a training batch; the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.weight_parameters(), clip)
    optimizer.step()
    return loss.item()


def alpha_step(net, optimizer, batch_w, batch_alpha, penalty: CostPenalty, order: int,
               xi: float, weight_decay: float) -> tuple[float, float]:
    """One Adam step of ``alpha`` on a validation batch; (the loss, the batch's accuracy)."""
    optimizer.zero_grad(set_to_none=True)
    if order == 2:
        loss, correct = second_order_gradient(net, batch_w, batch_alpha, xi, weight_decay)
    else:
        logits = net(batch_alpha[0])
        loss = F.cross_entropy(logits, batch_alpha[1])
        set_grads(net.arch_parameters(), torch.autograd.grad(loss, net.arch_parameters()))
        correct = (logits.argmax(1) == batch_alpha[1]).float().mean().item()
    if penalty.active:
        extra = torch.autograd.grad(penalty(net), net.arch_parameters(), allow_unused=True)
        set_grads(net.arch_parameters(), [p.grad + (0 if g is None else g)
                                          for p, g in zip(net.arch_parameters(), extra)])
    optimizer.step()
    return float(loss.detach()) if torch.is_tensor(loss) else float(loss), correct


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g


def second_order_gradient(net, batch_w, batch_alpha, xi: float,
                          weight_decay: float) -> tuple[float, float]:
    """Set the architecture weights' ``grad`` to Liu et al.'s unrolled gradient (equation 8); the
    loss at ``w'``."""
    weights, arch = net.weight_parameters(), net.arch_parameters()
    saved = [p.detach().clone() for p in weights]
    grads = torch.autograd.grad(F.cross_entropy(net(batch_w[0]), batch_w[1]), weights, allow_unused=True)
    with torch.no_grad():  # w' = w - xi (grad + weight decay)
        for p, g in zip(weights, grads):
            p.sub_(xi * ((0 if g is None else g) + weight_decay * p))
    logits = net(batch_alpha[0])
    loss = F.cross_entropy(logits, batch_alpha[1])
    grads = torch.autograd.grad(loss, [*arch, *weights], allow_unused=True)
    d_alpha, d_w = grads[:len(arch)], grads[len(arch):]
    d_w = [torch.zeros_like(p) if g is None else g for p, g in zip(weights, d_w)]
    eps = FINITE_DIFFERENCE / (torch.sqrt(sum((g * g).sum() for g in d_w)) + 1e-12)
    hessian = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, s, g in zip(weights, saved, d_w):
                p.copy_(s + sign * eps * g)
        train_loss = F.cross_entropy(net(batch_w[0]), batch_w[1])
        hessian.append(torch.autograd.grad(train_loss, arch, allow_unused=True))
    with torch.no_grad():
        for p, s in zip(weights, saved):
            p.copy_(s)
    set_grads(arch, [None if a is None else a - xi * ((0 if p is None else p) - (0 if m is None else m)) / (2 * eps)
                     for a, p, m in zip(d_alpha, *hessian)])
    return loss.item(), (logits.argmax(1) == batch_alpha[1]).float().mean().item()
