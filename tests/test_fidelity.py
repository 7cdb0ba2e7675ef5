"""torch-fidelity bridge: its metric code runs on gandoctor's features, offline."""

from __future__ import annotations

import numpy as np
import torch

from gandoctor import fidelity
from gandoctor.features import FeatureContext, build_extractor


def _pixels():
    import contextlib

    @contextlib.contextmanager
    def untouched(m, d):
        yield

    ctx = FeatureContext(torch.nn.Linear(1, 1), lambda m, x, y: m(x), untouched, 64, torch.Generator().manual_seed(0))
    return build_extractor("pixels", ctx)


def test_metrics_separate_matching_and_shifted_features():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 8, generator=g)
    same = torch.randn(300, 8, generator=g)
    shifted = torch.randn(300, 8, generator=g) + 3.0
    m_same = fidelity.metrics_from_features(real, same, kid_subset_size=100)
    m_shift = fidelity.metrics_from_features(real, shifted, kid_subset_size=100)
    assert m_same.fid < 1.0 < 50.0 < m_shift.fid
    assert abs(m_same.kid_mean) < 0.05 < m_shift.kid_mean
    assert m_same.precision > 0.8 and m_shift.precision < 0.2


def test_fid_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(1)
    real = torch.from_numpy(rng.normal(size=(20000, 2)))
    fake = torch.from_numpy(rng.normal(size=(20000, 2)) * 2.0 + np.array([1.0, 0.0]))
    # ||mu1-mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) = 1 + (1 + 4 - 4) * 2 = 3
    assert abs(fidelity.metrics_from_features(real, fake, kid_subset_size=200).fid - 3.0) < 0.15


def test_registered_extractor_runs_torch_fidelitys_own_pipeline():
    import torch_fidelity

    fidelity.register_extractor("gandoctor-test-pixels", _pixels())

    class Images(torch.utils.data.Dataset):
        def __init__(self, seed: int, shift: int = 0):
            g = torch.Generator().manual_seed(seed)
            self.x = (torch.randint(0, 200, (120, 3, 8, 8), generator=g) + shift).clamp(0, 255).to(torch.uint8)

        def __len__(self):
            return self.x.shape[0]

        def __getitem__(self, i):
            return self.x[i]

    out = torch_fidelity.calculate_metrics(
        input1=Images(0), input2=Images(1), fid=True, feature_extractor="gandoctor-test-pixels",
        batch_size=40, cuda=False, verbose=False, save_cpu_ram=True, cache=False,
    )
    far = torch_fidelity.calculate_metrics(
        input1=Images(0, shift=55), input2=Images(1), fid=True, feature_extractor="gandoctor-test-pixels",
        batch_size=40, cuda=False, verbose=False, save_cpu_ram=True, cache=False,
    )
    assert np.isfinite(out["frechet_inception_distance"])
    assert far["frechet_inception_distance"] > out["frechet_inception_distance"]


def test_inception_status_says_where_the_weights_are_expected():
    status = fidelity.inception_status()
    assert str(status.path) in status.message
    assert status.available == status.path.is_file()
    if not status.available:
        assert "cannot be downloaded" in status.message


def test_doctor_computes_fid_and_kid_on_a_schedule():
    from gandoctor.probes import Schedule

    from .test_probes import train

    schedule = Schedule(feature_every=1, sample_stats_every=10, fidelity_every=20, flush_every=5)
    _, _, doctor = train(60, {"schedule": schedule, "strict": True})
    fid = doctor.signals.get("feat.fid")
    kid = doctor.signals.get("feat.kid")
    assert fid is not None and kid is not None
    assert fid.steps.tolist() == [20, 40]
    assert np.isfinite(fid.values).all() and (fid.values >= 0).all()


def test_fidelity_schedule_is_validated():
    import pytest

    from gandoctor.probes import Schedule

    with pytest.raises(ValueError, match="fidelity_every"):
        Schedule(fidelity_every=-1)


def test_fidelity_schedule_must_align_with_sample_statistics():
    import pytest

    from gandoctor.probes import Schedule

    with pytest.raises(ValueError, match="multiple of Schedule.sample_stats_every"):
        Schedule(sample_stats_every=100, fidelity_every=150)
    assert Schedule(sample_stats_every=100, fidelity_every=300).fidelity_every == 300


class _Payload:
    """A pickle that would create a file when unpickled without restrictions."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _weights_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    path = fidelity.inception_weights_path()
    path.parent.mkdir(parents=True)
    return path


def test_inception_features_without_weights_name_the_expected_path(tmp_path, monkeypatch):
    import pytest

    import gandoctor

    path = _weights_dir(tmp_path, monkeypatch)
    with pytest.raises(fidelity.FidelityUnavailable, match="cannot be downloaded") as info:
        gandoctor.Doctor(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1), features="inception")
    assert str(path) in str(info.value)


def test_inception_weights_holding_code_are_refused_before_anything_runs(tmp_path, monkeypatch):
    import pytest

    path = _weights_dir(tmp_path, monkeypatch)
    marker = tmp_path / "ran"
    torch.save({"weight": torch.zeros(1), "payload": _Payload(str(marker))}, path)
    with pytest.raises(fidelity.FidelityUnavailable, match="not a plain tensor weights file"):
        fidelity.inception_extractor()
    assert not marker.exists()


def test_inception_weights_of_the_wrong_model_give_a_clear_error(tmp_path, monkeypatch):
    import pytest

    path = _weights_dir(tmp_path, monkeypatch)
    torch.save({"not_inception.weight": torch.zeros(3)}, path)
    with pytest.raises(fidelity.FidelityUnavailable, match="could not build InceptionV3"):
        fidelity.inception_extractor()
