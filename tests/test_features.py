"""Feature extractors: the registry, D's own features, and that extracting them leaves training untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gandoctor
from gandoctor.features import FEATURE_EXTRACTORS, FeatureContext, build_extractor, output_layer, register_feature_extractor
from gandoctor.probes import Schedule

from .test_probes import CondD, make_models, non_saturating_step, state, train


def _ctx(d: nn.Module, layer: str | None = None, dim: int = 64) -> FeatureContext:
    import contextlib

    @contextlib.contextmanager
    def untouched(module, device):
        yield

    return FeatureContext(d, lambda m, x, y: m(x) if y is None else m(x, y), untouched, dim, torch.Generator().manual_seed(0), layer)


def test_registry_lists_the_builtins_and_rejects_duplicates():
    assert {"pixels", "random_projection", "pooled", "d_penultimate"} <= set(FEATURE_EXTRACTORS)
    with pytest.raises(ValueError, match="already registered"):
        register_feature_extractor("pixels", lambda ctx: (lambda x, y: x), "dup")
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'"):
        build_extractor("nope", _ctx(nn.Linear(2, 1)))


def test_pixels_projects_only_when_larger_and_keeps_distances_roughly():
    d = nn.Linear(2, 1)
    small = build_extractor("pixels", _ctx(d))(torch.randn(10, 2), None)
    assert small.shape == (10, 2)
    x = torch.randn(50, 3, 16, 16)
    feats = build_extractor("pixels", _ctx(d))(x, None)
    assert feats.shape == (50, 64)
    original = torch.cdist(x.reshape(50, -1), x.reshape(50, -1))
    projected = torch.cdist(feats, feats)
    mask = ~torch.eye(50, dtype=torch.bool)
    ratio = projected[mask] / original[mask]
    assert 0.6 < ratio.median().item() < 1.4


def test_pooled_reduces_images_before_projecting():
    feats = build_extractor("pooled", _ctx(nn.Linear(2, 1)))(torch.randn(4, 1, 32, 32), None)
    assert feats.shape == (4, 64)  # 1 x 8 x 8


def test_pooled_sees_one_picture_under_fresh_pixel_noise_where_pixels_see_spread():
    # Why it is the default: a collapsed G drawing one blurry digit with new noise on top looks
    # diverse pixel by pixel; pooled, its fakes sit far closer together than distinct pictures do.
    g = torch.Generator().manual_seed(0)
    picture = torch.rand(1, 1, 32, 32, generator=g)
    same = picture + 0.3 * torch.randn(64, 1, 32, 32, generator=g)
    distinct = torch.rand(64, 1, 4, 4, generator=g).repeat_interleave(8, -1).repeat_interleave(8, -2)

    def spread(name: str, x: torch.Tensor) -> float:
        f = build_extractor(name, _ctx(nn.Linear(2, 1)))(x, None)
        return torch.pdist(f).mean().item()

    assert spread("pixels", same) > 0.8 * spread("pixels", distinct)
    assert spread("pooled", same) < 0.4 * spread("pooled", distinct)
    # samples of at most 8x8 are read exactly as pixels
    small = torch.randn(16, 1, 8, 8, generator=g)
    assert torch.equal(build_extractor("pooled", _ctx(nn.Linear(2, 1)))(small, None),
                       build_extractor("pixels", _ctx(nn.Linear(2, 1)))(small, None))


def test_d_penultimate_is_the_input_of_ds_last_layer():
    _, D = make_models()
    name, last = output_layer(D)
    assert name == "4" and last is D[4]
    x = torch.randn(16, 2)
    D.eval()
    feats = build_extractor("d_penultimate", _ctx(D))(x, None)
    expected = D[3](D[2](D[1](D[0](x))))
    assert torch.allclose(feats, expected)


def test_named_feature_layer_uses_that_modules_output_and_unknown_names_fail():
    _, D = make_models()
    D.eval()
    x = torch.randn(8, 2)
    feats = build_extractor("d_penultimate", _ctx(D, layer="0"))(x, None)
    assert torch.allclose(feats, D[0](x))
    with pytest.raises(ValueError, match="feature layer 'nope' is not a module of D"):
        build_extractor("d_penultimate", _ctx(D, layer="nope"))


def test_training_is_bit_identical_with_d_features():
    schedule = Schedule(feature_every=1, sample_stats_every=5, d_probe_every=3, flush_every=4)
    G0, D0, _ = train(30, None)
    G1, D1, doctor = train(30, {"features": "d_penultimate", "schedule": schedule, "strict": True})
    for a, b in zip(state(G0, D0), state(G1, D1)):
        assert torch.equal(a, b)
    assert doctor.signals.get("feat.coverage") is not None


def test_conditional_d_features_get_the_labels():
    torch.manual_seed(0)
    G, D = nn.Linear(4, 2), CondD()
    doctor = gandoctor.Doctor(G, D, features="d_penultimate", schedule=Schedule(feature_every=1, d_probe_every=1000), strict=True)
    y = torch.randint(0, 3, (16,))
    doctor.step(d_loss=0.5, g_loss=0.5, real=torch.randn(16, 2), fake=G(torch.randn(16, 4)), labels=y)
    # step 0: the D probe (2 forwards) and the feature extraction (2 forwards) all get the labels
    assert len(D.seen_labels) == 4 and all(torch.equal(seen, y) for seen in D.seen_labels)


def test_bad_features_argument_is_a_clear_error():
    G, D = make_models()
    with pytest.raises(ValueError, match="unknown feature extractor"):
        gandoctor.Doctor(G, D, features="inceptionv4")
    with pytest.raises(TypeError, match="features must be"):
        gandoctor.Doctor(G, D, features=3)  # type: ignore[arg-type]


def test_output_layer_is_found_through_spectral_norm():
    _, D = make_models(sn=True)
    name, last = output_layer(D)
    assert name == "4" and last is D[4]
    D.eval()
    x = torch.randn(8, 2)
    feats = build_extractor("d_penultimate", _ctx(D))(x, None)
    assert feats.shape == (8, 32)


def test_auto_keeps_small_samples_as_pixels_and_uses_d_for_images():
    from gandoctor.features import AUTO_PIXELS_MAX_DIM

    _, D = make_models()
    D.eval()
    points = torch.randn(8, 2)
    auto = build_extractor("auto", _ctx(D))
    assert torch.equal(auto(points, None), points)
    assert auto.chosen == "pixels"

    conv = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 16 * 16, 1)).eval()
    images = torch.randn(8, 1, 32, 32)
    assert images[0].numel() > AUTO_PIXELS_MAX_DIM
    auto = build_extractor("auto", _ctx(conv))
    feats = auto(images, None)
    assert auto.chosen == "d_penultimate"
    assert torch.allclose(feats, build_extractor("d_penultimate", _ctx(conv))(images, None))


def test_auto_on_images_tells_the_run_its_features_move_with_d(tmp_path):
    # The doctor's shape-settling wrapper hid what `auto` chose: the run kept "auto", and the
    # k-means cells of D's moving features were fitted once on a reservoir of old ones.
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path, features="auto", strict=True)
    for _ in range(30):
        real, fake = torch.rand(16, 1, 28, 28) * 2 - 1, G(torch.randn(16, 8))
        d_loss, g_loss = non_saturating_step(G, D, opt_g, opt_d, real, fake)
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
    doctor.close()
    host = next(p for p in doctor.probes if p.name == "features").host
    assert doctor.context.values["features"] == "d_penultimate" and host.features_move_with_d()
    assert not host.bank.reservoir  # no reals kept for cells fitted once


def test_auto_falls_back_to_pixels_when_d_has_no_layer_to_read():
    parameterless = nn.Sequential(nn.Flatten(), nn.Identity())
    auto = build_extractor("auto", _ctx(parameterless))
    feats = auto(torch.randn(4, 1, 32, 32), None)
    assert auto.chosen == "pixels" and feats.shape == (4, 64)


class ProjectionD(nn.Module):
    """SNGAN-style projection discriminator: the class embedding is registered last."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 16), nn.ReLU())
        self.linear = nn.Linear(16, 1)
        self.embed = nn.Embedding(3, 16)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)


def test_projection_discriminator_features_come_from_the_output_layer_not_the_embedding():
    d = ProjectionD().eval()
    name, layer = output_layer(d)
    assert name == "linear" and layer is d.linear
    x, y = torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    feats = build_extractor("d_penultimate", _ctx(d))(x, y)
    assert torch.allclose(feats, d.body(x))


def _flat_g_on_images(log_dir, fake_as_image: bool, steps: int = 400) -> tuple[dict, tuple[str, ...]]:
    """An MLP GAN on the digits at 16x16: the loader's reals are (N, 1, 16, 16), G's samples flat
    (N, 256), as an MLP G on MNIST makes them. Returns the sample signals' values and the warnings."""
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    x = F.interpolate(torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 8.0 - 1.0, size=(16, 16), mode="bilinear")
    G = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 256), nn.Tanh())
    D = nn.Sequential(nn.Flatten(), nn.Linear(256, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=2e-3), torch.optim.Adam(D.parameters(), lr=2e-4)
    bce = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    schedule = Schedule(budget=None, feature_every=10, sample_stats_every=20, latent_every=20, feature_batch=64)
    with gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=log_dir, schedule=schedule) as doctor:
        for _ in range(steps):
            real = x[torch.randint(0, len(x), (64,), generator=gen)]
            fake = G(torch.randn(64, 8))
            d_loss = bce(D(real), torch.ones(64, 1)) + bce(D(fake.detach()), torch.zeros(64, 1))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = bce(D(fake), torch.ones(64, 1))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake.view(64, 1, 16, 16) if fake_as_image else fake)
        report = doctor.report()
    names = ("feat.precision", "feat.coverage_ratio", "feat.diversity_ratio", "latent.drift")
    return {n: doctor.signals.get(n).values.tolist() for n in names if doctor.signals.get(n) is not None}, report.warnings


def test_flat_fakes_beside_image_reals_are_read_in_the_images_shape(tmp_path):
    # lyeoni's MLP GAN passes G's flat (N, 784) beside the loader's (N, 1, 28, 28): the features pooled
    # the images and projected the flat rows, so real digits passed flat read 0% near the data and a
    # collapse to one class went unseen. Read in one shape, they measure what the same fakes passed as
    # images do; so do G's flat outputs on its fixed codes (latent.drift).
    flat, said = _flat_g_on_images(tmp_path / "flat", fake_as_image=False)
    image, unsaid = _flat_g_on_images(tmp_path / "image", fake_as_image=True)
    assert set(flat) == set(image) and {"feat.precision", "latent.drift"} <= set(flat)
    for name in flat:
        assert flat[name] == pytest.approx(image[name], rel=1e-5, abs=1e-6, nan_ok=True), name
    assert any("fake= (64, 256): the sample features read both in the shape (1, 16, 16)" in w for w in said)
    assert not any("sample features read both" in w for w in unsaid)


def _coverage_at_batch(batch: int, collapsed: bool) -> tuple[float, float]:
    """The sample statistics' coverage ratio and precision (medians over the run) of an
    image-to-image G watched at ``batch``: G maps its inputs to two fixed digits (collapsed) or to
    real digits of its own (a G that learned the data), with D trained as usual."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    data, own = digits[:900], digits[900:]
    D = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    G = nn.Conv2d(1, 1, 3, padding=1)
    opt_d = torch.optim.Adam(D.parameters(), 2e-4)
    doctor = gandoctor.Doctor(G, D, d_optimizer=opt_d, schedule=Schedule(budget=None, latent_every=0), strict=True)
    for _ in range(400):
        picks = torch.randint(0, len(own), (batch,))
        fake = (own[picks % 2] if collapsed else own[picks]) + 0.01 * torch.tanh(G(own[picks]))
        real = data[torch.randint(0, len(data), (batch,))]
        d_loss = nn.functional.softplus(-D(real)).mean() + nn.functional.softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        doctor.step(d_loss=d_loss, g_loss=1.0, real=real, fake=fake.detach())
    doctor.close()
    median = lambda name: float(doctor.signals.get(name).values[-4:].mean())  # noqa: E731
    return median("feat.coverage_ratio"), median("feat.precision")


@pytest.mark.parametrize("batch", [1, 4])
def test_small_batches_give_the_sample_statistics_enough_samples_to_tell_a_collapse(batch: int):
    # CycleGAN trains at batch 1 or 4: the statistics compared 8 fakes with 8 reals, every k-NN ball
    # covered everything, coverage and precision read 1.0 at every check, and a G drawing 3 digit
    # classes read "collapse: clear". The batches of the steps just before each check are kept too.
    collapsed, learned = _coverage_at_batch(batch, True), _coverage_at_batch(batch, False)
    assert collapsed[0] < 0.3 < 0.6 < learned[0]
