"""The fixed-latent probe: codes, drift against the real-vs-real floor, the sample grid, and that
training stays bit-identical."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gandoctor
from gandoctor.probes import Schedule
from gandoctor.probes.latents import reads_data

from .test_probes import softplus_gan_steps, state, train


def test_fixed_latent_probe_leaves_a_batchnorm_generator_bit_identical(tmp_path):
    # G has BatchNorm1d in training mode: its running statistics would move if the probe's
    # forward were not undone, and the global RNG would advance if its codes came from it.
    schedule = Schedule(latent_every=1, latent_batch=32, feature_every=1, sample_stats_every=5, flush_every=4)
    G0, D0, _ = train(30, None)
    rng_without = torch.get_rng_state()
    G1, D1, doctor = train(30, {"log_dir": tmp_path, "schedule": schedule, "strict": True})
    rng_with = torch.get_rng_state()
    doctor.close()
    for a, b in zip(state(G0, D0), state(G1, D1), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(rng_without, rng_with)
    assert G1.training
    drift = doctor.signals.get("latent.drift")
    assert drift is not None and len(drift) >= 25
    assert (drift.values > 0).all()
    assert doctor.context.values["latent_dim"] == 4
    assert doctor.samples is not None and doctor.samples.shape == (16, 2)


def test_latent_drift_is_zero_for_a_frozen_generator_and_scales_with_its_movement():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 2))
    D = nn.Linear(2, 1)
    # One real batch, kept four times by the bank: 64 codes compare with its 64 distinct samples.
    schedule = Schedule(latent_every=2, latent_batch=64, feature_every=1, flush_every=1)
    doctor = gandoctor.Doctor(G, D, schedule=schedule, strict=True)
    real = torch.randn(64, 2)
    for _ in range(4):
        doctor.step(d_loss=0.5, real=real, fake=G(torch.randn(64, 3)).detach())
    assert doctor.signals.get("latent.drift").values[-1] == 0.0
    with torch.no_grad():
        G[0].bias += torch.tensor([3.0, 0.0])  # every output moves by exactly 3
    for _ in range(2):
        doctor.step(d_loss=0.5, real=real, fake=real)
    d = torch.cdist(real, real).fill_diagonal_(float("inf"))  # 2-D samples are their own features
    expected = 3.0 / d.min(dim=1).values.median().item()
    assert doctor.signals.get("latent.drift").values[-1] == pytest.approx(expected, rel=1e-4)


def test_eval_mode_spread_of_a_batchnorm_generator_is_measured_and_modes_are_restored():
    """A BatchNorm G whose running statistics are far from its batches' maps every code to nearly
    the same output in eval mode, while its training-mode outputs spread; the probe measures the
    eval-mode spread against the reals and leaves each module in its own mode."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 2), nn.Dropout(0.0))
    G[3].eval()  # a module the user keeps in eval mode must stay there
    with torch.no_grad():
        G[1].running_var.fill_(1e6)  # eval: activations divided by 1000
    D = nn.Linear(2, 1)
    # The bank keeps the one real batch once (features at step 0 only): the reals' spread is that batch's.
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=2, latent_batch=64, feature_every=4, flush_every=1), strict=True)
    real = torch.randn(64, 2)
    for _ in range(4):  # fakes not from G: the loop's own forwards would move the running statistics
        doctor.step(d_loss=0.5, real=real, fake=torch.randn(64, 2))
    doctor.close()
    assert G.training and G[1].training and not G[3].training  # each module's own mode, restored
    ratio = doctor.signals.get("latent.eval_diversity_ratio")
    assert ratio is not None and len(ratio) >= 1
    with torch.no_grad():
        G.eval()
        extract = doctor._latents.host.extract
        expected = torch.pdist(extract(G(doctor._latents.codes), None)).mean() / torch.pdist(extract(real, None)).mean()
    assert ratio.values[-1] == pytest.approx(float(expected), rel=1e-4)
    assert ratio.values[-1] < 0.05
    G.train()
    assert torch.equal(G[1].running_var, torch.full((8,), 1e6))


def test_a_generator_without_batchnorm_records_no_eval_mode_spread():
    torch.manual_seed(0)
    G, D = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)), nn.Linear(2, 1)
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=2, latent_batch=64, feature_every=1, flush_every=1), strict=True)
    for _ in range(6):
        doctor.step(d_loss=0.5, real=torch.randn(64, 2), fake=G(torch.randn(64, 3)).detach())
    doctor.close()
    assert "latent.drift" in doctor.signals and "latent.eval_diversity_ratio" not in doctor.signals


def test_latent_shape_comes_from_the_first_layer_or_the_arguments():
    class ConvG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.ConvTranspose2d(8, 4, 4), nn.BatchNorm2d(4), nn.Tanh())

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            assert z.shape[1:] == (8, 1, 1)
            return self.net(z)

    D = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    doctor = gandoctor.Doctor(ConvG(), D, schedule=Schedule(latent_every=1), strict=True)
    doctor.step(d_loss=0.5)
    assert doctor.samples.shape == (16, 4, 4, 4)
    assert doctor.context.values["latent_dim"] == 8

    seen = []

    def sample(n: int, gen: torch.Generator) -> torch.Tensor:
        seen.append(n)
        return torch.rand(n, 5, generator=gen)

    G = nn.Sequential(nn.Linear(5, 2))
    doctor = gandoctor.Doctor(G, nn.Linear(2, 1), schedule=Schedule(latent_every=1, latent_batch=20), sample_latent=sample, strict=True)
    doctor.step(d_loss=0.5)
    doctor.step(d_loss=0.5)
    assert seen == [20]  # drawn once, the same codes at every check
    with pytest.raises(ValueError, match="latent_dim"):
        gandoctor.Doctor(G, nn.Linear(2, 1), latent_dim=0)


class CondG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(z) + y[:, None].float()


class CondD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x) + y[:, None].float()


def test_a_conditional_generator_without_labels_gets_no_latent_probe_and_says_why_once(tmp_path, caplog):
    doctor = gandoctor.Doctor(CondG(), nn.Linear(2, 1), log_dir=tmp_path, schedule=Schedule(latent_every=5, flush_every=1))
    doctor.step(d_loss=0.5)
    assert doctor.samples is None and not doctor.disabled_probes
    assert not doctor.report().warnings  # not yet: it has not had two intervals to run
    for _ in range(30):
        doctor.step(d_loss=0.5)
    doctor.close()
    assert doctor.samples is None and not doctor.disabled_probes  # not a failure: nothing was switched off
    (said,) = [w for w in doctor.report().warnings if "fixed-latent probe" in w]
    assert "fake_labels=" in said and "latent.cell_churn" in said
    assert sum("fixed-latent probe" in r.getMessage() for r in caplog.records) == 1
    assert any("fake_labels=" in w for w in gandoctor.read_run(tmp_path).warnings)  # in the run log too
    assert "latent_dim" not in doctor.context.values  # G's first layer reads z and the labels: not z's width


class NoiseAndDataG(nn.Module):
    """caogang/wgan-gp's gan_toy.py: G(noise, real_data), the second input used only in a debug mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(2, 2)

    def forward(self, noise: torch.Tensor, real_data: torch.Tensor) -> torch.Tensor:
        return self.net(noise)


def test_a_second_input_is_named_as_g_names_it_not_taken_for_labels():
    doctor = gandoctor.Doctor(NoiseAndDataG(), nn.Linear(2, 1), schedule=Schedule(latent_every=5, flush_every=1))
    for _ in range(30):
        doctor.step(d_loss=0.5)
    doctor.close()
    (said,) = [w for w in doctor.report().warnings if "fixed-latent probe" in w]
    assert "forward(noise, real_data)" in said and "if real_data is G's class labels" in said
    assert "sample_latent=lambda n, gen: (noise, real_data)" in said


def test_an_image_to_image_generator_is_told_how_to_give_its_fixed_inputs():
    G = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 3, padding=1))
    D = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=2, flush_every=1))
    for _ in range(6):
        doctor.step(d_loss=0.5)
    (said,) = [w for w in doctor.report().warnings if "fixed-latent probe" in w]
    assert "Conv2d" in said and "sample_latent=" in said
    inputs = torch.randn(8, 1, 8, 8)
    given = gandoctor.Doctor(G, D, sample_latent=lambda n, gen: inputs[:n], schedule=Schedule(latent_every=2, latent_batch=8, flush_every=1))
    for _ in range(6):
        given.step(d_loss=0.5)
    assert given.samples is not None and not any("fixed-latent probe" in w for w in given.report().warnings)


def test_a_conditional_generator_runs_on_fixed_codes_with_the_first_labels_it_was_given():
    torch.manual_seed(0)
    G = CondG()
    doctor = gandoctor.Doctor(G, CondD(), schedule=Schedule(latent_every=1, latent_batch=6, feature_every=1, flush_every=1), strict=True)
    real = torch.randn(8, 2)
    doctor.step(d_loss=0.5, real=real[:4], fake=real[:4], labels=torch.tensor([0, 1, 2, 3]), fake_labels=torch.tensor([0, 1, 2, 3]))
    nines = torch.tensor([9, 9, 9, 9])
    doctor.step(d_loss=0.5, real=real[4:], fake=real[4:], labels=nines, fake_labels=nines)  # later labels do not change the codes' labels
    assert doctor.samples is not None and doctor.samples.shape == (6, 2)
    codes = doctor._latents.codes
    expected = G.net(codes) + torch.tensor([0, 1, 2, 3, 0, 1])[:, None].float()  # cycled to the batch
    assert torch.allclose(doctor.samples, expected.detach())
    assert doctor.signals.get("latent.drift").values[-1] == 0.0  # G did not move between the checks


class OptionalLabelG(nn.Module):
    """A G with ``forward(z, y=None)`` that needs its labels (as many scripts write a conditional G)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        assert y is not None, "this G is conditional"
        return self.net(z) + y[:, None].float()


def test_a_generator_with_optional_labels_gets_the_labels_the_loop_passes():
    torch.manual_seed(0)
    G = OptionalLabelG()
    doctor = gandoctor.Doctor(G, CondD(), schedule=Schedule(latent_every=1, latent_batch=4, feature_every=1, flush_every=1), strict=True)
    real = torch.randn(4, 2)
    labels = torch.tensor([0, 1, 2, 3])
    doctor.step(d_loss=0.5, real=real, fake=real, labels=labels, fake_labels=labels)
    assert not doctor.disabled_probes
    assert doctor.samples is not None
    assert torch.allclose(doctor.samples, (G.net(doctor._latents.codes) + labels[:, None].float()).detach())


def test_sample_grid_is_written_as_an_event_the_reader_skips(tmp_path):
    import base64
    import json

    import numpy as np

    from gandoctor.readers import read_run

    schedule = Schedule(latent_every=5, sample_grid_every=2, flush_every=5)
    _, _, doctor = train(30, {"log_dir": tmp_path, "schedule": schedule, "strict": True})
    doctor.close()
    lines = [json.loads(line) for line in (tmp_path / "gandoctor.jsonl").read_text().splitlines()]
    grids = [r for r in lines if r["type"] == "event" and r.get("level") == "samples"]
    assert [r["step"] for r in grids] == [0, 5, 10, 15, 20]  # the first 5 checks, then every 2nd
    last = grids[-1]["samples"]
    q = np.frombuffer(base64.b64decode(last["uint8"]), dtype=np.uint8).reshape(last["shape"])
    restored = last["lo"] + q / 255.0 * (last["hi"] - last["lo"])
    assert q.shape == (16, 2) and q.min() == 0 and q.max() == 255
    assert np.isfinite(restored).all()
    data = read_run(tmp_path)
    assert not data.warnings


def test_a_generator_that_unflattens_its_code_gets_flat_codes():
    G = nn.Sequential(nn.Unflatten(1, (8, 1, 1)), nn.ConvTranspose2d(8, 2, 4), nn.Tanh())
    D = nn.Sequential(nn.Flatten(), nn.Linear(32, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=1), strict=True)
    doctor.step(d_loss=0.5)
    doctor.step(d_loss=0.5)
    assert doctor.samples.shape == (16, 2, 4, 4) and not doctor.disabled_probes


def test_cell_churn_is_zero_while_g_keeps_its_cells_and_one_when_it_hops_to_other_data():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        G[0].weight.mul_(0.1)
        G[0].bias.copy_(torch.tensor([-5.0, 0.0]))  # every output near the left cluster
    D = nn.Linear(2, 1)
    schedule = Schedule(latent_every=2, feature_every=1, sample_stats_every=2, flush_every=1, budget=None)
    doctor = gandoctor.Doctor(G, D, schedule=schedule, strict=True)
    centres = torch.tensor([[-5.0, 0.0], [5.0, 0.0]])

    def real_batch() -> torch.Tensor:
        return centres[torch.randint(0, 2, (128,))] + 0.3 * torch.randn(128, 2)

    for _ in range(10):  # 4 feature checks fill the k-means reservoir (512 reals)
        doctor.step(d_loss=0.5, real=real_batch(), fake=G(torch.randn(128, 3)).detach())
    churn = doctor.signals.get("latent.cell_churn")
    assert churn is not None and churn.values[-1] == 0.0  # a frozen G holds the same cells
    with torch.no_grad():
        G[0].bias.copy_(torch.tensor([5.0, 0.0]))  # the same codes now land in the other cluster
    for _ in range(2):
        doctor.step(d_loss=0.5, real=real_batch(), fake=G(torch.randn(128, 3)).detach())
    assert doctor.signals.get("latent.cell_churn").values[-1] == 1.0


class EmbeddingG(nn.Module):
    """A conditional G whose first layer takes z and a label embedding concatenated (z has 4
    dimensions; the first Linear reads 7)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(7, 2)
        self.embed = nn.Embedding(10, 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([z, self.embed(y)], dim=1))


class CganG(nn.Module):
    """PyTorch-GAN's cgan.py layout: the label embedding registered first, then a first Linear that
    reads the embedding and z concatenated (z has 4 dimensions, the embedding 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.label_emb = nn.Embedding(10, 3)
        self.model = nn.Sequential(nn.Linear(7, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat((self.label_emb(y), z), -1))


class OneHotG(nn.Module):
    """A conditional G that concatenates z (4) with one-hot labels (10): nothing in G says how wide z is."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(14, 2)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([z, nn.functional.one_hot(y, 10).float()], dim=1))


def test_latent_shape_candidates_try_the_first_layer_then_less_each_label_embedding():
    from gandoctor.context import latent_shape, latent_shape_candidates

    assert latent_shape_candidates(EmbeddingG()) == ((7,), (4,))
    assert latent_shape_candidates(CganG()) == ((7,), (4,))  # the embedding registered first no longer hides the Linear
    assert latent_shape(CganG()) == (7,)
    assert latent_shape_candidates(CganG(), latent_dim=5) == ((5,),)
    assert latent_shape_candidates(OneHotG()) == ((14,),)
    assert latent_shape_candidates(nn.Sequential(nn.Conv2d(3, 4, 3))) == ()


@pytest.mark.parametrize("G", [EmbeddingG, CganG, OneHotG])
def test_a_conditional_g_that_concatenates_its_labels_gets_its_z_size_found(G):
    labels = torch.tensor([0, 1, 2, 3])
    doctor = gandoctor.Doctor(G(), CondD(), schedule=Schedule(latent_every=1, feature_every=1, flush_every=1), strict=True)
    real = torch.randn(4, 2)
    for _ in range(3):
        doctor.step(d_loss=0.5, real=real, fake=real, labels=labels, fake_labels=labels)
    assert "latents" not in doctor.disabled_probes
    assert doctor.samples is not None and doctor.samples.shape == (16, 2)
    assert doctor.context.values["latent_dim"] == 4


class ReshapingG(nn.Module):
    """An unconditional G that reads its code as an 8x8 image: no width but 64 fits, and nothing
    in its first layer says so (its first Linear reads 16 values after a pooling)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.avg_pool2d(z.view(z.shape[0], 1, 8, 8), 2).flatten(1))


def test_a_wrongly_guessed_latent_size_switches_the_probe_off_once_with_the_fix_named():
    G = ReshapingG()
    doctor = gandoctor.Doctor(G, nn.Linear(2, 1), schedule=Schedule(latent_every=1, feature_every=1, flush_every=1))
    real = torch.randn(4, 2)
    for _ in range(3):
        doctor.step(d_loss=0.5, real=real, fake=real)
    message = doctor.disabled_probes["latents"]
    assert "shape(s) tried (its first layer" in message and "(16,)" in message and "latent_dim=" in message
    fixed = gandoctor.Doctor(G, nn.Linear(2, 1), schedule=Schedule(latent_every=1, feature_every=1, flush_every=1), latent_dim=64, strict=True)
    fixed.step(d_loss=0.5, real=real, fake=real)
    assert fixed.samples is not None and fixed.samples.shape == (16, 2)  # the first 16 outputs, for the grid


def test_a_generator_with_three_inputs_runs_on_the_tuple_sample_latent_returns():
    """An InfoGAN's G takes noise, labels and a code: ``sample_latent`` returns all three."""

    class InfoG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4 + 3 + 2, 2)

        def forward(self, noise: torch.Tensor, labels: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
            return self.net(torch.cat((noise, labels, code), -1))

    def sample(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.randn(n, 4, generator=gen), torch.eye(3)[torch.randint(0, 3, (n,), generator=gen)], torch.rand(n, 2, generator=gen)

    torch.manual_seed(0)
    G = InfoG()
    schedule = Schedule(latent_every=2, latent_batch=32, feature_every=1, flush_every=1)
    doctor = gandoctor.Doctor(G, nn.Linear(2, 1), sample_latent=sample, schedule=schedule, strict=True)
    for _ in range(6):
        doctor.step(d_loss=0.5, real=torch.randn(32, 2), fake=torch.randn(32, 2))
    doctor.close()
    assert "latent.drift" in doctor.signals and doctor.samples is not None
    # Without it the probe stays idle, fake_labels= or not (it cannot feed the code), and says what
    # works: once it tried every guessed width, each refused for the missing code, and told the
    # user to pass latent_dim=, which cannot help.
    doctor = gandoctor.Doctor(InfoG(), nn.Linear(2, 1), schedule=schedule)
    for _ in range(30):
        doctor.step(d_loss=0.5, real=torch.randn(32, 2), fake=torch.randn(32, 2), fake_labels=torch.eye(3)[torch.zeros(32, dtype=torch.long)])
    doctor.close()
    assert not doctor.disabled_probes and doctor.samples is None  # idle, not failed
    (said,) = [w for w in doctor.report().warnings if "fixed-latent probe" in w]
    assert "3 inputs (noise, labels, code)" in said and "sample_latent=lambda n, gen: (noise, labels, code)" in said
    assert "fake_labels=" not in said


def test_a_generator_that_reads_data_is_not_fed_noise():
    """An MLP G whose first layer takes a real sample's worth of values (image-to-image), or many
    times what D's reals hold (an adversarial autoencoder's encoder against a prior), reads data:
    the probe refuses with the way to give it inputs instead of measuring noise fed to it."""
    assert reads_data(784, 784) and reads_data(784, 8) and reads_data(3072, 3072)
    assert not reads_data(2, 2) and not reads_data(64, 64)       # a toy G with z as wide as the data
    assert not reads_data(256, 256)                              # z of 256 making 16x16 images
    assert not reads_data(100, 784) and not reads_data(128, 2)   # latent codes
    assert not reads_data(784, None)
    image_to_image = nn.Sequential(nn.Flatten(), nn.Linear(784, 784), nn.Unflatten(1, (1, 28, 28)))
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 8))
    for G, real in ((image_to_image, torch.randn(16, 1, 28, 28)), (encoder, torch.randn(16, 8))):
        D = nn.Sequential(nn.Flatten(), nn.Linear(real[0].numel(), 1))
        doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=2, flush_every=1))
        for _ in range(4):
            doctor.step(d_loss=0.5, real=real, fake=real)
        refusal = doctor.disabled_probes["latents"]
        assert "reads data" in refusal and "sample_latent=" in refusal and "latent.drift" not in doctor.signals
    # A latent G making the same images is fed codes as before.
    G = nn.Sequential(nn.Linear(100, 784), nn.Unflatten(1, (1, 28, 28)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(784, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=2, flush_every=1), strict=True)
    for _ in range(4):
        doctor.step(d_loss=0.5, real=torch.randn(16, 1, 28, 28), fake=torch.randn(16, 1, 28, 28))
    assert doctor.samples is not None


class MapsCondG(nn.Module):
    """znxlwm's cDCGAN G: a (B, 8, 1, 1) code and one-hot label maps (B, 10, 1, 1), deconvolved together."""

    def __init__(self) -> None:
        super().__init__()
        self.deconv_z, self.deconv_y = nn.ConvTranspose2d(8, 4, 4), nn.ConvTranspose2d(10, 4, 4)
        self.out = nn.ConvTranspose2d(8, 1, 4, 2, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(torch.cat([self.deconv_z(z), self.deconv_y(y)], 1)))


def test_labels_in_another_form_than_g_takes_are_named_in_the_latent_probe_s_refusal():
    # The loop passes class indices as fake_labels= while G takes one-hot maps: G's refusal of the
    # (8, 1, 1) codes it asks for is the one reported (not a flat retry's), with the labels named.
    G, D = MapsCondG(), nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=1, feature_every=1, flush_every=1), latent_dim=8)
    doctor.step(d_loss=0.5, real=torch.randn(4, 1, 8, 8), fake=torch.randn(4, 1, 8, 8), labels=torch.arange(4), fake_labels=torch.arange(4))
    message = doctor.disabled_probes["latents"]
    assert "fake_labels=" in message and "sample_latent=lambda n, gen: (z, labels)" in message
    assert "(8, 1, 1)" in message and "input of size: [128]" in message  # the labels, refused
    assert G(torch.randn(2, 8, 1, 1), torch.randn(2, 10, 1, 1)).shape == (2, 1, 8, 8)  # the form G takes
    guessed = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=1, feature_every=1, flush_every=1))
    guessed.step(d_loss=0.5, real=torch.randn(4, 1, 8, 8), fake=torch.randn(4, 1, 8, 8), labels=torch.arange(4), fake_labels=torch.arange(4))
    message = guessed.disabled_probes["latents"]
    assert "(8, 1, 1): Expected 3D (unbatched) or 4D" in message and "fake_labels=" in message


@pytest.mark.parametrize(("draw", "low", "high"), [("rand", 0.0, 1.0), ("rand11", -1.0, 1.0), ("randn", None, None)])
def test_the_fixed_codes_follow_the_law_of_the_loop_s_own_codes(draw: str, low: float | None, high: float | None):
    """znxlwm's collection draws G's codes with torch.rand: run on standard normal codes, G was
    fed negative inputs it never saw. The doctor's codes follow the law the loop's first call of
    G shows (uniform on [0, 1) or [-1, 1), else normal), and training stays bit-identical."""
    def run(with_doctor: bool) -> tuple[nn.Module, gandoctor.Doctor | None]:
        torch.manual_seed(0)
        G = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
        opt_g = torch.optim.SGD(G.parameters(), 0.01)
        doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=2, flush_every=2), strict=True) if with_doctor else None
        for _ in range(4):
            z = {"rand": torch.rand(32, 8), "rand11": 2 * torch.rand(32, 8) - 1, "randn": torch.randn(32, 8)}[draw]
            fake = G(z)
            g_loss = -D(fake).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            real = torch.randn(32, 2)  # drawn with or without the doctor
            if doctor is not None:
                doctor.step(g_loss=g_loss, real=real, fake=fake)
        return G, doctor

    G, doctor = run(True)
    assert doctor is not None
    doctor.close()
    codes = doctor._latents.codes
    assert isinstance(codes, torch.Tensor) and codes.shape == (doctor.schedule.latent_batch, 8)
    if low is None:
        assert codes.min() < -1.5 and codes.max() > 1.5  # standard normal
    else:
        assert codes.min() >= low and codes.max() <= high and codes.min() < low + 0.05 and codes.max() > high - 0.05
    assert not G[0]._forward_pre_hooks  # the hook that saw the loop's codes is gone
    G_without, _ = run(False)
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G_without.state_dict().values(), strict=True))


class _ListG(nn.Module):
    """A G taking a list of style codes and returning (image, latents), as rosinality's StyleGAN2."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(8, 2)

    def forward(self, styles: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(styles[0]), styles[0]


@pytest.mark.parametrize("form", ["list", "tuple of a list"])
def test_a_generator_that_takes_a_list_of_codes_runs_on_what_sample_latent_returns(form: str):
    # rosinality's StyleGAN2 calls G([z]): sample_latent returning [z] was splatted into G(z), and
    # ([z],) failed inside the doctor ('list' object has no attribute 'to').
    torch.manual_seed(0)
    G, D = _ListG(), nn.Linear(2, 1)

    def sample(n: int, gen: torch.Generator):  # type: ignore[no-untyped-def]
        codes = [torch.randn(n, 8, generator=gen)]
        return codes if form == "list" else (codes,)

    doctor = gandoctor.Doctor(G, D, sample_latent=sample, schedule=Schedule(latent_every=2, flush_every=2), strict=True)
    for _ in range(6):
        fake, _ = G([torch.randn(32, 8)])
        doctor.step(d_loss=1.3, real=torch.randn(32, 2), fake=fake.detach())
    doctor.close()
    assert len(doctor.signals.get("latent.drift")) >= 2
    assert doctor.samples is not None and doctor.samples.shape == (16, 2)  # G's outputs for 16 codes, not for one code's row


def test_a_constant_first_call_of_g_is_no_draw_of_the_loop_s_codes():
    """Lightning's model summary runs G once on example_input_array (zeros in its GAN template)
    after the callback has attached: read as uniform on [0, 1), a normal-code G was fed codes it
    never saw and a diverse G read as collapsed in eval mode (GD306)."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=2, flush_every=2), strict=True)
    with torch.no_grad():
        G(torch.zeros(2, 8))  # the summary's example input
    for _ in range(4):
        fake = G(torch.randn(32, 8))
        doctor.step(g_loss=-D(fake).mean(), real=torch.randn(32, 2), fake=fake)
    doctor.close()
    codes = doctor._latents.codes
    assert isinstance(codes, torch.Tensor) and codes.min() < -1.5 and codes.max() > 1.5  # standard normal


class HierarchicalG(nn.Module):
    """BigGAN's G, cut down: z (32 wide) split in four, the first layer reading 8 of it and the
    later ones each another chunk beside the labels' embedding, which the loop passes (G(z, G.shared(y)))."""

    def __init__(self) -> None:
        super().__init__()
        self.shared, self.linear = nn.Embedding(10, 8), nn.Linear(8, 32)
        self.blocks = nn.ModuleList([nn.Linear(32 + 16, 32) for _ in range(3)])
        self.out = nn.Linear(32, 16)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(z, 8, 1)
        h = self.linear(chunks[0])
        for block, chunk in zip(self.blocks, chunks[1:], strict=True):
            h = torch.relu(block(torch.cat([h, y, chunk], 1)))
        return torch.tanh(self.out(h))


def test_the_loop_s_own_code_shape_is_tried_and_any_error_of_g_s_is_a_refusal():
    """The width guessed from BigGAN's first layer (8) made G raise IndexError, which escaped the
    shape search: the probe was switched off with 'list index out of range' and no way in. The
    loop's own codes (32 wide) are tried first now, and any error is a refusal ending in the hint."""
    torch.manual_seed(0)
    G, D = HierarchicalG(), nn.Sequential(nn.Linear(16, 1))
    embed = lambda n, gen: (torch.randn(n, 32, generator=gen), G.shared(torch.arange(n) % 10).detach())  # noqa: E731
    for sample_latent in (None, embed):
        doctor = gandoctor.Doctor(G, D, schedule=Schedule(latent_every=5, flush_every=5), sample_latent=sample_latent)
        for _ in range(12):
            y = torch.randint(0, 10, (32,))
            fake = G(torch.randn(32, 32), G.shared(y))
            doctor.step(d_loss=0.5, real=torch.randn(32, 16), fake=fake, fake_labels=y)
        doctor.close()
        if sample_latent is None:  # class indices as fake_labels=, where G takes their embedding: refused, with the way in
            message = doctor.disabled_probes["latents"]
            assert "G refused 128 latent codes" in message and "(32,)" in message and "sample_latent=" in message
        else:
            assert "latents" not in doctor.disabled_probes and doctor.signals.get("latent.drift") is not None


def test_the_loop_s_codes_are_summarised_not_kept():
    """The pre-hook that reads the loop's code law kept the batches it saw (their storage too):
    an image-to-image G's input batches would stay alive for the run."""
    from gandoctor.probes.latents import LoopCodes

    G = nn.Sequential(nn.Linear(8, 2))
    codes = LoopCodes(G)
    for _ in range(LoopCodes.CALLS):
        G(torch.rand(64, 8))
    assert not G._forward_pre_hooks and len(codes.seen) == LoopCodes.CALLS
    assert all(lo.numel() == hi.numel() == 1 for _, lo, hi in codes.seen)
    assert codes.law(8) == "uniform01" and codes.shape() == (8,)


def test_a_latent_g_whose_first_registered_layer_is_a_convolution_gets_its_codes_from_its_calls(tmp_path):
    """pytorch_GAN_zoo's PGAN GNet registers its toRGB convolutions before the Linear that reads z:
    the first layer read as a convolution over images, and the probe never ran. Its calls give
    z's shape (32,)."""
    import torch.nn.functional as F

    class PganLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.to_rgb = nn.ModuleList()
            self.format_layer = nn.Linear(32, 16 * 4 * 4)
            self.to_rgb.append(nn.Conv2d(16, 1, 1))

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.to_rgb[0](F.leaky_relu(self.format_layer(z)).view(-1, 16, 4, 4)))

    torch.manual_seed(0)
    G, D = PganLike(), nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path)
    softplus_gan_steps(G, D, opt_g, opt_d, doctor, 120, lambda step: torch.rand(64, 1, 4, 4) * 2 - 1, z_dim=32)
    doctor.close()
    assert "latent.drift" in doctor.signals and not [w for w in doctor.report().warnings if "fixed-latent probe has not run" in w]


def test_the_loop_s_inputs_give_a_code_shape_only_where_they_are_codes():
    from gandoctor.probes.latents import LoopCodes, loop_latent_shape

    for given, real, expected in (
        (torch.randn(8, 32), torch.randn(8, 1, 4, 4), (32,)),
        (torch.randn(8, 100, 1, 1), torch.randn(8, 3, 16, 16), (100, 1, 1)),  # DCGAN's (C, 1, 1) code
        (torch.randn(8, 1, 32, 32), torch.randn(8, 1, 32, 32), None),  # pix2pix: G reads images
        (torch.randn(8, 784), torch.randn(8, 1, 28, 28), None),  # a flat image-to-image G
    ):
        G = nn.Sequential(nn.Flatten(), nn.LazyLinear(2))
        codes = LoopCodes(G)
        G(given)
        assert loop_latent_shape(codes, real) == expected


class _ScaledG(nn.Module):
    """A progressive G as rosinality's StyleGAN calls it: ``G(z, step=s, alpha=a)``, its first
    scale (4x4) the default, never trained where the loop starts at 8x8."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.to_rgb4 = nn.Linear(8, 16 * 4 * 4), nn.Conv2d(16, 1, 1)
        self.up, self.to_rgb8 = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 1, 1)

    def forward(self, z: torch.Tensor, step: int = 0, alpha: float = -1) -> torch.Tensor:
        h = self.fc(z).view(-1, 16, 4, 4)
        if step == 0:
            return torch.tanh(self.to_rgb4(h))
        up = nn.functional.interpolate(h, scale_factor=2)
        return torch.tanh(self.to_rgb8(nn.functional.leaky_relu(self.up(up))))


def _scaled_run(with_doctor: bool, tmp_path) -> tuple[list[torch.Tensor], gandoctor.Doctor | None]:
    torch.manual_seed(0)
    G, D = _ScaledG(), nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=tmp_path, schedule=Schedule(latent_every=10), strict=True)
    if not with_doctor:
        doctor.close()  # closed before training: it watches nothing

    def at_second_scale(z: torch.Tensor) -> torch.Tensor:
        return G(z, step=1, alpha=1.0)  # the loop trains the 8x8 scale

    softplus_gan_steps(at_second_scale, D, opt_g, opt_d, doctor, 60, lambda step: torch.rand(32, 1, 8, 8) * 2 - 1, z_dim=8)
    doctor.close()
    return state(G, D), doctor


def test_the_fixed_codes_run_through_g_with_the_loop_s_keyword_arguments(tmp_path):
    # rosinality's StyleGAN trains G(z, step=step, alpha=alpha): the probe ran G(z), G's untrained
    # 4x4 head, and failed once the bins (fitted on the 8x8 reals) met its 4x4 outputs: switched off.
    trained, doctor = _scaled_run(True, tmp_path)
    assert doctor is not None and doctor.disabled_probes == {}
    probe = next(p for p in doctor.probes if p.name == "latents")
    assert probe.samples is not None and tuple(probe.samples.shape[1:]) == (1, 8, 8)
    assert len(doctor.signals.get("latent.drift")) >= 3
    assert all(torch.equal(a, b) for a, b in zip(trained, _scaled_run(False, tmp_path / "plain")[0], strict=True))  # training untouched


class _StyleGANLikeG(nn.Module):
    """StyleGAN2-ADA's G as the probe meets it: ``forward(z, c)`` with ``c_dim`` 0 when
    unconditional, ``z_dim`` an attribute, its first layer a class of its own (no nn.Linear)."""

    def __init__(self, z_dim: int = 8, c_dim: int = 0) -> None:
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.weight = nn.Parameter(torch.randn(2, z_dim + c_dim) * 0.3)

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return nn.functional.linear(torch.cat([z, c], dim=1), self.weight)


def test_a_stylegan_g_s_z_dim_and_empty_classes_feed_the_fixed_latent_probe():
    # The probe could not start on StyleGAN2-ADA's G: no nn.Linear to read z's width from, and
    # G(z, c) taken for a conditional G waiting for labels that an unconditional run never passes.
    G = _StyleGANLikeG()
    D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, schedule=Schedule(latent_every=10, budget=None), strict=True)
    softplus_gan_steps(_CalledWithEmptyC(G), D, opt_g, opt_d, doctor, 60, lambda step: torch.randn(32, 2) + 2, z_dim=8)
    assert doctor.disabled_probes == {} and len(doctor.signals.get("latent.drift")) >= 3
    assert doctor.context.values["latent_dim"] == 8


class _CalledWithEmptyC(nn.Module):
    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        self.g = g

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.g(z, torch.zeros(z.shape[0], 0))
