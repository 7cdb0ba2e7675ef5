"""torch-fidelity bridge: FID, KID and precision/recall on gandoctor's features, offline.

Two ways in:

- :func:`metrics_from_features` runs torch-fidelity's own metric code (FID statistics, KID's
  polynomial-kernel MMD, k-NN precision/recall) on features the doctor already has (D's
  penultimate features, projected pixels, ...): no downloads, usable on a schedule.
- :func:`register_extractor` registers a gandoctor extractor in torch-fidelity's
  feature-extractor registry, so ``torch_fidelity.calculate_metrics(feature_extractor=NAME,
  ...)`` computes its metrics on it.

The standard InceptionV3 metrics need torch-fidelity's weights file in the torch hub cache;
they cannot be downloaded on machines without internet. :func:`inception_status` says whether
they are present and where they are expected. torch-fidelity is imported only here, so the CLI
and the rule engine start without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import GanDoctorError

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


class FidelityUnavailable(GanDoctorError):
    """torch-fidelity (or the InceptionV3 weights it needs) is not available."""


def _torch_fidelity() -> Any:
    try:
        import torch_fidelity  # noqa: F401
        from torch_fidelity import metric_fid, metric_kid, metric_prc, registry
    except ImportError as exc:  # pragma: no cover - exercised where the extra is not installed
        raise FidelityUnavailable(f"torch-fidelity is not installed ({exc}); pip install torch-fidelity") from None
    return metric_fid, metric_kid, metric_prc, registry


def inception_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


@dataclass(frozen=True)
class InceptionStatus:
    available: bool
    path: Path
    message: str


def inception_status() -> InceptionStatus:
    path = inception_weights_path()
    if path.is_file():
        return InceptionStatus(True, path, f"InceptionV3 weights found at {path}: standard FID/KID/IS available")
    return InceptionStatus(
        False,
        path,
        f"InceptionV3 weights not found at {path}; they cannot be downloaded on this machine. Standard (Inception) "
        "FID/KID/IS are unavailable: gandoctor computes the same metrics on its own features instead "
        "(copy the file there, or set TORCH_HOME, to enable them).",
    )


@dataclass(frozen=True)
class FidelityMetrics:
    fid: float
    kid_mean: float
    kid_std: float
    precision: float
    recall: float
    f_score: float
    n_real: int
    n_fake: int


def metrics_from_features(real: torch.Tensor, fake: torch.Tensor, kid_subset_size: int | None = None, prc_neighborhood: int = 3, seed: int = 0) -> FidelityMetrics:
    """torch-fidelity's FID, KID and precision/recall on two (n, d) feature tensors."""
    metric_fid, metric_kid, metric_prc, _ = _torch_fidelity()
    real = real.detach().double().cpu()
    fake = fake.detach().double().cpu()
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected two (n, d) feature tensors of the same d, got {tuple(real.shape)} and {tuple(fake.shape)}")
    n = min(real.shape[0], fake.shape[0])
    if n < 4:
        raise ValueError(f"need at least 4 samples on each side, got {real.shape[0]} real and {fake.shape[0]} fake")
    subset = min(kid_subset_size or n, n)
    fid = metric_fid.fid_statistics_to_metric(
        metric_fid.fid_features_to_statistics(fake), metric_fid.fid_features_to_statistics(real), verbose=False
    )[metric_fid.KEY_METRIC_FID]
    kid = metric_kid.kid_features_to_metric(
        fake, real, kid_subsets=10, kid_subset_size=subset, kid_degree=3, kid_gamma=None, kid_coef0=1, rng_seed=seed, verbose=False
    )
    prc = metric_prc.prc_features_to_metric(
        fake.float(), real.float(), prc_neighborhood=prc_neighborhood, prc_batch_size=10000, save_cpu_ram=False, verbose=False
    )
    return FidelityMetrics(
        fid=float(fid),
        kid_mean=float(kid[metric_kid.KEY_METRIC_KID_MEAN]),
        kid_std=float(kid[metric_kid.KEY_METRIC_KID_STD]),
        precision=float(prc[metric_prc.KEY_METRIC_PRECISION]),
        recall=float(prc[metric_prc.KEY_METRIC_RECALL]),
        f_score=float(prc[metric_prc.KEY_METRIC_F_SCORE]),
        n_real=int(real.shape[0]),
        n_fake=int(fake.shape[0]),
    )


def inception_extractor() -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """torch-fidelity's InceptionV3 (2048-d pool features) as a gandoctor extractor, from weights
    already on this machine; :class:`FidelityUnavailable` with the reason when they are not.

    Images in [-1, 1], (n, 1 or 3, H, W); grey images are repeated to RGB; torch-fidelity resizes
    to 299x299 itself. The weights file is first opened with ``torch.load(weights_only=True)``,
    which refuses anything but tensors and plain containers, so no code stored in it can run
    when torch-fidelity loads it.
    """
    _torch_fidelity()
    status = inception_status()
    if not status.available:
        raise FidelityUnavailable(status.message)
    try:
        torch.load(status.path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FidelityUnavailable(f"{status.path}: not a plain tensor weights file ({type(exc).__name__}: {exc})") from None
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(status.path))
    except Exception as exc:
        raise FidelityUnavailable(f"{status.path}: torch-fidelity could not build InceptionV3 from it ({type(exc).__name__}: {exc})") from None

    def extract(x: torch.Tensor, labels: Any) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"InceptionV3 features need images (n, 1 or 3, H, W), got shape {tuple(x.shape)}")
        images = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        model.to(x.device)
        with torch.no_grad():
            return model(images)[0].reshape(images.shape[0], -1).float()

    return extract


def register_extractor(name: str, extractor: Callable[[torch.Tensor, Any], torch.Tensor]) -> None:
    """Register ``extractor`` (images in [-1, 1] -> (n, d)) in torch-fidelity's registry as ``name``.

    torch-fidelity feeds uint8 images (0..255); they are mapped to [-1, 1] before ``extractor``.
    """
    _, _, _, registry = _torch_fidelity()
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class GanDoctorExtractor(FeatureExtractorBase):
        def __init__(self, fe_name: str, features_list: list[str], **kwargs: Any) -> None:
            super().__init__(fe_name, features_list)

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("features",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "features"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        @staticmethod
        def get_dummy_input_for_compile() -> torch.Tensor:
            return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            images = x.float() / 127.5 - 1.0
            with torch.no_grad():
                feats = extractor(images, None)
            return (feats.reshape(feats.shape[0], -1).float(),)

    registry.register_feature_extractor(name, GanDoctorExtractor)
