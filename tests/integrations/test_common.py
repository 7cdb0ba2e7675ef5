"""What every adapter shares: finding G and D, matching optimizers, mapping logged loss names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gandoctor.integrations import IntegrationError
from gandoctor.integrations._common import (
    find_module,
    loss_argument,
    match_optimizers,
    unwrap_module,
    unwrap_optimizer,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("d_loss", "d_loss"), ("loss_D", "d_loss"), ("errD", "d_loss"), ("train/d_loss", "d_loss"),
        ("d_loss_step", "d_loss"), ("train_loss_g", "g_loss"), ("critic_loss", "d_loss"), ("errG", "g_loss"),
        ("d_loss_epoch", None), ("loss", None), ("lr", None), ("val/acc", None),
    ],
)
def test_loss_names(name, expected):
    assert loss_argument(name) == expected


def test_extra_loss_names_win():
    assert loss_argument("adv", {"adv": "g_loss"}) == "g_loss"


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.netG, self.netD = nn.Linear(2, 2), nn.Linear(2, 1)


def test_optimizers_matched_by_parameters_in_any_order():
    m = Pair()
    opt_g, opt_d = torch.optim.SGD(m.netG.parameters(), lr=0.1), torch.optim.SGD(m.netD.parameters(), lr=0.1)
    match = match_optimizers([opt_d, opt_g], m.netG, m.netD)
    assert match.g is opt_g and match.d is opt_d and match.notes == ()
    both = torch.optim.SGD(m.parameters(), lr=0.1)
    match = match_optimizers([both], m.netG, m.netD)
    assert match.g is None and match.d is None and "both G and D" in match.notes[0]


def test_find_module_names_what_it_looked_for():
    name, module = find_module(Pair(), ("generator", "netG"), "generator")
    assert name == "netG" and isinstance(module, nn.Linear)
    with pytest.raises(IntegrationError, match="looked for attribute\\(s\\) generator, G"):
        find_module(Pair(), ("generator", "G"), "generator")


def test_unwrapping():
    inner = nn.Linear(2, 2)
    assert unwrap_module(nn.DataParallel(inner)) is inner
    assert unwrap_module(torch.compile(inner, backend="eager")) is inner
    opt = torch.optim.SGD(inner.parameters(), lr=0.1)

    class Wrapper(torch.optim.Optimizer):  # Accelerate's wrapper is an Optimizer holding the real one
        def __init__(self, optimizer):
            self.optimizer = optimizer

    assert unwrap_optimizer(Wrapper(opt)) is opt
    with pytest.raises(IntegrationError, match="got str"):
        unwrap_optimizer("adam")
