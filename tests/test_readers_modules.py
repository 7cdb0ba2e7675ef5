"""Models printed in a console log (``print(netG)``): what G and D are made of, read from their repr."""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

import gandoctor
from gandoctor import read_run
from gandoctor.readers.modules import ModelReprs, role_of

from .test_readers_console import dcgan_log

ROOT = Path(__file__).resolve().parents[1]


class Generator(nn.Module):  # pytorch/examples' DCGAN G, two blocks
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(100, 64, 4, 1, 0, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
            nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh(),
        )


class Discriminator(nn.Module):  # a spectral-norm D with dropout, no BatchNorm
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            parametrizations.spectral_norm(nn.Conv2d(1, 64, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Conv2d(64, 1, 4, 1, 0), nn.Sigmoid(),
        )


def _read(text: str) -> ModelReprs:
    models = ModelReprs()
    for lineno, line in enumerate(text.splitlines(), 1):
        models.feed(lineno, line)
    models.finish()
    return models


def test_a_printed_d_with_a_spectral_norm_of_its_own_reads_as_spectrally_normalised():
    from .test_context import SNLinear, SpectralNorm

    class OwnD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Sequential(SpectralNorm(nn.Linear(2, 8)), nn.LeakyReLU(0.2), SNLinear(8, 1))

    context = _read(str(Generator()) + "\n" + str(OwnD()).replace("OwnD", "Discriminator") + "\n").context()
    assert "d_spectral_norm" in context.flags and context.values["d_norm"] == []


def test_reads_batchnorm_in_g_and_dropout_and_spectral_norm_in_d_from_torch_reprs():
    models = _read("Namespace(batchSize=64)\n" + str(Generator()) + "\n" + str(Discriminator()) + "\n")
    context = models.context()
    assert context.flags == {"g_batchnorm", "d_dropout", "d_spectral_norm"}
    assert context.values["g_norm"] == ["BatchNorm2d"]
    assert context.values["d_norm"] == []  # spectral norm is a parametrization, not a norm layer
    assert context.values["g_printed_at_line"] == 2
    assert models.models["d"].line == 2 + len(str(Generator()).splitlines())


def test_a_d_with_batchnorm_and_a_g_without():
    g = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    d = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    context = _read(f"netG: {g}\nnetD: {d}\n").context()  # print("netG:", netG)
    assert context.flags == {"d_batchnorm"}
    assert context.values["g_norm"] == [] and context.values["d_norm"] == ["BatchNorm1d"]


@pytest.mark.parametrize(
    ("name", "role"),
    [("Generator", "g"), ("_netG", "g"), ("netG", "g"), ("ConvG", "g"), ("DCGAN_G", "g"), ("G", "g"),
     ("Discriminator", "d"), ("Critic", "d"), ("netD", "d"), ("ConvD", "d"), ("D", "d"),
     ("DCGenerator", "g"), ("my_generator", "g"),
     ("Sequential", None), ("VGG", None), ("ImageNetVGG", None), ("Decoder", None), ("DCGAN", None)],
)
def test_which_model_is_g_and_which_d_comes_from_its_name(name, role):
    assert role_of(name) == role


def test_a_model_named_neither_way_is_left_alone():
    # print(model) of a bare Sequential says nothing about which model it is
    g = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    models = _read(str(g) + "\n")
    assert models.models == {} and models.context().flags == frozenset()


def test_a_repr_cut_short_by_the_end_of_the_log_still_counts():
    text = "\n".join(str(Generator()).splitlines()[:5])  # the log ends inside G's repr
    assert "g_batchnorm" in _read(text).context().flags


def test_a_console_log_with_printed_models_reads_the_same_records_and_no_unmatched_lines(tmp_path):
    plain = tmp_path / "plain.log"
    dcgan_log(plain)
    printed = tmp_path / "printed.log"
    head, rest = plain.read_text().split("Starting Training Loop...\n")
    printed.write_text(head + str(Generator()) + "\n" + str(Discriminator()) + "\nStarting Training Loop...\n" + rest)
    a, b = read_run(plain), read_run(printed)
    assert b.records == a.records
    assert b.signals.names() == a.signals.names()  # no pair inside a repr (eps=, momentum=) read as data
    # the lines of the reprs are not counted as lines that matched no log format
    assert [w.replace(str(printed), "LOG") for w in b.warnings] == [w.replace(str(plain), "LOG") for w in a.warnings]
    assert b.context.flags == {"g_batchnorm", "d_dropout", "d_spectral_norm"}
    assert a.context.flags == frozenset()


def test_a_printed_batchnorm_g_stands_gd305_down_on_a_real_corpus_run(tmp_path):
    # A DCGAN with BatchNorm in G from the corpus, D-dominated and not collapsed by its oracle;
    # its scalars printed as pytorch/examples' DCGAN prints them, with and without the models
    # printed first, as that script does. From losses and D's outputs alone GD305 infers collapse
    # from the winning D; the printed G says it has BatchNorm, on which that inference stands down.
    sys.path.insert(0, str(ROOT / "fixtures"))
    import corpus

    run = ROOT / "fixtures" / "corpus" / "c069-d_strong-digits16-dcgan_bn"
    oracle = json.loads((run / "oracle.json").read_text())
    assert sorted(oracle["labels"]) == ["discriminator_dominance"]
    recipe = oracle["recipe"]
    torch.manual_seed(0)
    g = corpus.ConvG(recipe["z_dim"], 16, recipe["ngf"], True, 0)
    d = corpus.ConvD(16, recipe["ndf"], False, False, 0)
    with gzip.open(run / "scalars.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    per = 50
    epochs = int(rows[-1]["step"]) // per + 1
    lines = "".join(
        "[%d/%d][%d/%d]\tLoss_D: %.4f\tLoss_G: %.4f\tD(x): %.4f\tD(G(z)): %.4f / %.4f\n"
        % (int(r["step"]) // per, epochs, int(r["step"]) % per, per, float(r["loss_D"]), float(r["loss_G"]),
           float(r["D_x"]), float(r["D_G_z"]), float(r["D_G_z"]))
        for r in rows
    )
    (tmp_path / "plain.log").write_text(lines)
    (tmp_path / "printed.log").write_text(f"{g}\n{d}\n{lines}")
    plain, printed = gandoctor.analyze(tmp_path / "plain.log"), gandoctor.analyze(tmp_path / "printed.log")
    assert [f.rule for f in plain.findings if f.mode == "mode_collapse"] == ["GD305"]
    assert "g_batchnorm" in printed.context.flags
    assert not [f for f in printed.findings if f.mode == "mode_collapse"]
    # the mode the oracle labels stays found
    assert "discriminator_dominance" in {f.mode for f in printed.findings}


class EBGANDiscriminator(nn.Module):  # znxlwm's EBGAN D: a conv encoder, a transposed-conv decoder
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), nn.ReLU())
        self.fc = nn.Sequential(nn.Linear(64 * 8 * 8, 32), nn.Linear(32, 64 * 8 * 8))
        self.deconv = nn.Sequential(nn.ConvTranspose2d(64, 1, 4, 2, 1))


def test_a_printed_d_that_decodes_is_an_autoencoder_d_whose_loss_the_floor_rules_do_not_read():
    # EBGAN's console log was called D-dominated (GD106): its D's reconstruction error read against
    # BCE's floor, where the live run, which establishes energy_d from D's outputs, read collapse.
    assert "energy_d" in _read(str(Generator()) + "\n" + str(EBGANDiscriminator()) + "\n").context().flags
    assert "energy_d" not in _read(str(Generator()) + "\n" + str(Discriminator()) + "\n").context().flags  # G's are G's


@pytest.mark.parametrize("prefix", ["[INFO] 2020-09-15 13:23:55 > ", "INFO:root:", "2020-09-15 13:23:55,120 - "])
def test_a_model_printed_through_a_logger_keeps_its_prefix_on_the_first_line_only(prefix):
    # StudioGAN logs its models with logger.info(Gen): the prefix read as the repr's label, no model
    # was found, and BatchNorm's eps and momentum were offered to --map as values.
    text = prefix + str(Generator()) + "\n" + prefix + "D: " + str(Discriminator()) + "\n"
    models = _read(text)
    assert set(models.models) == {"g", "d"} and "BatchNorm2d" in models.models["g"].layers
    assert "Dropout" in models.models["d"].layers


def test_studiogan_s_published_log_reads_both_losses_and_both_models():
    # StudioGAN's own DCGAN CIFAR-10 log (logs/CIFAR10 of the repository, 2020): its v0.1 lines
    # print 'ada_p: No Discriminator_loss: 0.0066': D's loss was read as 'No Discriminator_loss',
    # so the run was judged from G's loss alone and called HEALTHY.
    data = read_run(ROOT / "fixtures" / "public" / "studiogan_dcgan_cifar10.log.gz")
    assert (data.mapped["loss.d"], data.mapped["loss.g"]) == ("Discriminator_loss", "Generator_loss")
    assert len(data.signals.get("loss.d")) == len(data.signals.get("loss.g")) == 2000
    assert {"g_batchnorm", "d_batchnorm"} <= data.context.flags
    report = gandoctor.analyze(ROOT / "fixtures" / "public" / "studiogan_dcgan_cifar10.log.gz")
    assert "discriminator_dominance" in {f.mode for f in report.findings}  # D's loss 0.002 beside G's 11.6 at the end
