"""D's outputs: balanced accuracy beside the AUC, with the threshold of each output kind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gandoctor
from gandoctor.probes import Schedule


def test_d_accuracy_uses_the_threshold_of_the_output_kind():
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    real = torch.tensor([2.0, 1.0, -1.0, 3.0])
    fake = torch.tensor([-2.0, 0.5, -3.0, -1.0])
    expected = {"logit": (3 / 4 + 3 / 4) / 2}
    doctor = gandoctor.Doctor(G, D, d_output="logit", schedule=Schedule(flush_every=1), strict=True)
    doctor.step(d_loss=0.5, d_real=real, d_fake=fake)
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx(expected["logit"])
    # A critic's scores drift as a whole: the midpoint of the means (9.9375 here, not 0) is the threshold.
    doctor = gandoctor.Doctor(G, D, d_output="critic", schedule=Schedule(flush_every=1), strict=True)
    doctor.step(d_loss=-0.5, d_real=real + 10, d_fake=fake + 10)
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx(0.75)
    doctor.step(d_loss=-0.5, d_real=real + 10, d_fake=real + 9)
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx((2 / 4 + 3 / 4) / 2)
    doctor = gandoctor.Doctor(G, D, d_output="prob", schedule=Schedule(flush_every=1), strict=True)
    doctor.step(d_loss=0.5, d_real=torch.tensor([0.9, 0.6, 0.4]), d_fake=torch.tensor([0.1, 0.7, 0.5]))
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx((2 / 3 + (1 + 0.5) / 3) / 2)
    # auto: outputs within [0, 1] are probabilities; once one leaves it, logits (threshold 0).
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(flush_every=1), strict=True)
    doctor.step(d_loss=0.5, d_real=torch.tensor([0.9, 0.6]), d_fake=torch.tensor([0.1, 0.7]))
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx(0.75)
    doctor.step(d_loss=0.5, d_real=real, d_fake=fake)
    assert doctor.signals.get("d.acc").values[-1] == pytest.approx(expected["logit"])
