"""gandoctor.readers.console: output captured from real (tiny) training loops printing in the
PyTorch DCGAN example's and the PyTorch-GAN implementations' formats, tqdm bars included."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gandoctor import LogFormatError, read_run
from gandoctor.readers import READERS, ReadOptions

EPOCHS, BATCHES = 3, 12


def _tiny_gan_loop(print_line, epochs=EPOCHS, batches=BATCHES, lr_d=2e-4, log_every=1, lr_g=2e-4):
    """The DCGAN example's training loop on 2-D data, small enough for a test. Returns what it
    logged: [(epoch, batch, errD, errG, D_x, D_G_z1, D_G_z2)]."""
    torch.manual_seed(0)
    netG = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    netD = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1), nn.Sigmoid())
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=lr_d, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=lr_g, betas=(0.5, 0.999))
    logged = []
    for epoch in range(epochs):
        for i in range(batches):
            real = torch.randn(32, 2) * 0.5 + 2.0
            netD.zero_grad()
            output = netD(real).view(-1)
            errD_real = criterion(output, torch.ones_like(output))
            errD_real.backward()
            D_x = output.mean().item()
            fake = netG(torch.randn(32, 4))
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, torch.zeros_like(output))
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optD.step()
            netG.zero_grad()
            output = netD(fake).view(-1)
            errG = criterion(output, torch.ones_like(output))
            errG.backward()
            D_G_z2 = output.mean().item()
            optG.step()
            if i % log_every == 0:
                print_line(epoch, epochs, i, batches, errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)
                logged.append((epoch, i, errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))
    return logged


def dcgan_log(path: Path, tqdm_bars: bool = False, **kw) -> list:
    stream = io.StringIO()
    bar = None
    if tqdm_bars:
        from tqdm import tqdm

        bar = tqdm(total=EPOCHS * BATCHES, file=stream, mininterval=0, ascii=True)

    def line(epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, D_G_z2):
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss_D=errD)
        # The DCGAN example's print, verbatim.
        print('[%d/%d][%d/%d]\tLoss_D: %.4f\tLoss_G: %.4f\tD(x): %.4f\tD(G(z)): %.4f / %.4f'
              % (epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, D_G_z2), file=stream)

    logged = _tiny_gan_loop(line, **kw)
    if bar is not None:
        bar.close()
    path.write_text("Namespace(batchSize=64, lr=0.0002, ngpu=1)\nRandom Seed:  999\nStarting Training Loop...\n" + stream.getvalue())
    return logged


def test_dcgan_example_output_is_read_with_epoch_batch_steps(tmp_path):
    logged = dcgan_log(tmp_path / "train.log")
    data = read_run(tmp_path / "train.log")
    assert data.format == "console"
    assert dict(data.mapped) == {"loss.d": "Loss_D", "loss.g": "Loss_G", "d_prob.real": "D(x)", "d_prob.fake": "D(G(z))"}
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == [e * BATCHES + i for e, i, *_ in logged]
    assert np.allclose(d.values, [round(x[2], 4) for x in logged], atol=1e-9)
    assert np.allclose(data.signals.get("d_prob.fake").values, [round(x[5], 4) for x in logged], atol=1e-9)
    assert np.allclose(data.signals.get("user.d_g_z2").values, [round(x[6], 4) for x in logged], atol=1e-9)
    assert any("3 lines matched no known log format" in w and "line 1" in w for w in data.warnings)


def test_tqdm_bars_interleaved_with_carriage_returns_do_not_hide_lines(tmp_path):
    logged = dcgan_log(tmp_path / "train.log", tqdm_bars=True)
    raw = (tmp_path / "train.log").read_bytes()
    assert b"\r" in raw and b"it/s" in raw  # a real tqdm bar is in there
    data = read_run(tmp_path / "train.log")
    assert data.signals.get("loss.d").steps.tolist() == [e * BATCHES + i for e, i, *_ in logged]
    assert any("3 lines matched no known log format" in w for w in data.warnings)  # the bars are not counted
    # the bar's own postfix (loss_D=...) is not read as extra records
    assert int(data.signals.get("loss.d").counts.sum()) == len(logged)


def test_pytorch_gan_format(tmp_path):
    lines = []

    def line(epoch, epochs, i, batches, errD, errG, *_):
        # PyTorch-GAN's gan.py print, verbatim.
        lines.append("[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]" % (epoch, epochs, i, batches, errD, errG))

    logged = _tiny_gan_loop(line)
    (tmp_path / "out.txt").write_text("\n".join(lines) + "\n")
    data = read_run(tmp_path / "out.txt")
    assert data.format == "console" and data.warnings == ()
    assert dict(data.mapped) == {"loss.d": "D loss", "loss.g": "G loss"}
    assert data.signals.get("loss.g").steps.tolist() == [e * BATCHES + i for e, i, *_ in logged]
    assert np.allclose(data.signals.get("loss.g").values, [x[3] for x in logged], atol=1e-6)


def test_the_head_of_a_log_is_read_once_per_version_of_the_file(tmp_path, monkeypatch):
    from gandoctor.readers import console

    heads = []
    real_open = console.open_text

    def counting_open(path, *args, **kwargs):
        heads.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(console, "open_text", counting_open)
    console._head_parts_of.cache_clear()
    path = tmp_path / "out.log"
    path.write_text("[Epoch 0/5] [Batch 3/100] [D loss: 0.693] [G loss: 0.71]\n")
    assert read_run(path).signals.get("loss.d").values.tolist() == [0.693]
    # detection and the script-name check share one read of the head; the body is read once more
    assert len(heads) == 2
    path.write_text("[Epoch 0/5] [Batch 3/100] [D loss: 0.5] [G loss: 0.9]\n[Epoch 0/5] [Batch 4/100] [D loss: 0.4] [G loss: 0.8]\n")
    assert read_run(path).signals.get("loss.d").values.tolist() == [0.5, 0.4]  # a rewritten file is read anew


def test_pytorch_gan_variants_with_extra_items(tmp_path):
    path = tmp_path / "out.log"
    path.write_text("[Epoch 0/5] [Batch 3/100] [D loss: 0.693, acc: 50%] [G loss: 0.71, adv: 0.70, pixel: 0.01]\n")
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == [3]
    assert "user.g_adv" in data.signals.names() and "user.g_pixel" in data.signals.names()


def test_generic_key_value_lines(tmp_path):
    path = tmp_path / "train.out"
    path.write_text(
        "loading data ... done\n"
        "step=10 loss_D=1.20 loss_G=0.70 lr=0.0002\n"
        "step: 20 | d_loss: 1.10 | g_loss: 0.80\n"
        "Epoch [1/5], Step [100/600], d_loss: 0.5000, g_loss: 2.0000, D(x): 0.90, D(G(z)): 0.10\n"
        "step=30 loss_D=nan loss_G=inf\n"
    )
    data = read_run(path)
    d = data.signals.get("loss.d")
    # Epoch [1/5], Step [100/600] -> the first epoch (printed from 1, as yunjey's tutorial prints
    # epoch + 1), batch 100; then step 30 goes back: continued after 100 by the logging interval
    # seen (10), with a warning.
    assert d.steps.tolist() == [10, 20, 100, 110]
    assert d.nonfinite.tolist() == [0, 0, 0, 1]
    assert dict(data.mapped) == {"loss.d": "loss_D", "loss.g": "loss_G", "d_prob.real": "D(x)", "d_prob.fake": "D(G(z))"}
    assert "user.lr" in data.signals.names()
    assert any("line 5: the step goes back from 100 to 30" in w for w in data.warnings)
    assert any("1 lines matched no known log format" in w and "line 1" in w for w in data.warnings)


def test_step_that_goes_back_is_not_taken_as_history(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("step=100 loss_D=1\nstep=200 loss_D=2\nstep=50 loss_D=3\nstep=60 loss_D=4\n")
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == [100, 200, 300, 310]
    assert any("line 3" in w and "goes back from 200 to 50" in w for w in data.warnings)


def test_nothing_recognisable_is_an_error_not_a_healthy_run(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("hello\nworld\nepoch 1 done\n")
    with pytest.raises(LogFormatError, match="no training log lines found"):
        read_run(path, format="console")
    with pytest.raises(LogFormatError, match="not a log gandoctor can read"):
        read_run(path)


def test_console_is_detected_last_and_never_claims_tables(tmp_path):
    assert list(READERS)[-1] == "console"
    csv = tmp_path / "x.csv"
    csv.write_text("step,loss_D\n0,1\n")
    assert not READERS["console"].accepts(csv)


def test_a_progress_bar_postfix_is_read_when_the_log_holds_nothing_else(tmp_path):
    """Lightning's (or tqdm.set_postfix's) bar, saved with tee: `Epoch 1:  42%|####| 5/12 [..., d_loss=0.693,
    g_loss=0.71]` redrawn with carriage returns, one line per epoch: each redraw is a record at epoch x
    batches + n, read from the bar's own numbers (tqdm prints three significant digits)."""
    from tqdm import tqdm

    stream = io.StringIO()
    rng = np.random.default_rng(0)
    expected = []
    for epoch in range(EPOCHS):
        bar = tqdm(total=BATCHES, desc=f"Epoch {epoch}", file=stream, mininterval=0, ascii=True)
        for i in range(BATCHES):
            d_loss, g_loss = float(rng.uniform(0.2, 1.5)), float(rng.uniform(0.5, 3.0))
            bar.set_postfix(v_num=0, d_loss=d_loss, g_loss=g_loss, refresh=False)
            bar.update(1)
            expected.append((epoch * BATCHES + i + 1, float(f"{d_loss:.3g}")))
        bar.close()
    (tmp_path / "lightning.log").write_text(stream.getvalue())
    data = read_run(tmp_path / "lightning.log")
    assert data.format == "console" and data.mapped["loss.d"] == "d_loss" and data.mapped["loss.g"] == "g_loss"
    view = data.signals.get("loss.d")
    assert list(zip(view.steps.tolist(), view.values.tolist())) == expected


def test_printed_tensors_and_a_bare_step_number_are_read(tmp_path):
    """print("step", step, "D loss:", d_loss, "G loss:", g_loss) prints the tensors themselves,
    `tensor(0.6931, grad_fn=<...>)`, and the step with no ':' or '=' after its name."""
    stream = io.StringIO()
    expected = []
    for step in range(0, 200, 10):
        d_loss = torch.tensor(0.5 + step / 1000, requires_grad=True) * 1
        g_loss = torch.tensor(2.0 - step / 1000, requires_grad=True).to(torch.float64) * 1
        print("step", step, "D loss:", d_loss, "G loss:", g_loss, file=stream)
        expected.append((step, float(f"{d_loss.item():.4f}")))  # a tensor prints four decimals
    text = stream.getvalue()
    assert "tensor(0.5000, grad_fn=<MulBackward0>)" in text and "dtype=torch.float64" in text
    (tmp_path / "train.log").write_text(text)
    data = read_run(tmp_path / "train.log")
    assert data.format == "console" and data.signals.get("loss.g") is not None
    view = data.signals.get("loss.d")
    assert list(zip(view.steps.tolist(), view.values.tolist())) == expected


def test_a_logging_module_line_reads_its_step_not_its_timestamp(tmp_path):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    log = logging.getLogger("gandoctor-test-train")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    for step in range(0, 100, 10):
        log.info("step %d: d_loss=%.4f, g_loss=%.4f", step, 0.5 + step / 1000, 1.0)
    log.removeHandler(handler)
    (tmp_path / "train.log").write_text(stream.getvalue())
    view = read_run(tmp_path / "train.log").signals.get("loss.d")
    assert view.steps.tolist() == list(range(0, 100, 10))
    assert view.values.tolist() == [float(f"{0.5 + s / 1000:.4f}") for s in range(0, 100, 10)]  # as printed


def test_names_only_a_map_explains_make_a_console_log_readable(tmp_path):
    text = "".join(f"[12:00:{s % 60:02d}] Iteration {s} | netD: {0.5 + s / 1000:.4f} | netG: 1.0000\n" for s in range(0, 100, 10))
    path = tmp_path / "train.log"
    path.write_text(text)
    with pytest.raises(LogFormatError, match="not a log gandoctor can read") as err:
        read_run(path)  # "netD" and "netG" are no names the alias table reads as losses
    assert "values named 'netD', 'netG', none of them a name gandoctor knows" in str(err.value)
    assert "--map loss.d=NAME --map loss.g=NAME" in str(err.value)  # the way out, in the error
    data = read_run(path, options=ReadOptions(mapping={"loss.d": "netD", "loss.g": "netG"}))
    assert data.format == "console" and data.signals.get("loss.d").steps.tolist() == list(range(0, 100, 10))


@pytest.mark.parametrize("extra", ["", " D(x): 0.7000 D(G(z)): 0.3000"])
def test_losses_printed_under_bare_d_and_g_are_read_and_said(tmp_path, extra):
    # print(f"[{step}] D: {d_loss:.4f} | G: {g_loss:.4f}"), with or without D's outputs beside them
    # (those are known names: the losses still come from the bare letters).
    text = "".join(f"[12:00:{s % 60:02d}] Iteration {s} | D: {0.5 + s / 1000:.4f} | G: 1.0000{extra}\n" for s in range(0, 100, 10))
    path = tmp_path / "train.log"
    path.write_text(text)
    data = read_run(path)
    assert data.format == "console"
    view = data.signals.get("loss.d")
    assert view.steps.tolist() == list(range(0, 100, 10))
    assert view.values.tolist() == [float(f"{0.5 + s / 1000:.4f}") for s in range(0, 100, 10)]
    assert data.signals.get("loss.g").values.tolist() == [1.0] * 10
    assert any("read 'D' and 'G' as D's and G's losses" in w and "--map" in w for w in data.warnings)
    if extra:
        assert data.signals.get("d_prob.real").values.tolist() == [0.7] * 10


def test_bare_d_and_g_give_way_to_a_map_and_stay_out_of_tables(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("".join(f"step {s} D: 0.1 G: 0.2 errD: {0.5 + s / 1000:.4f} errG: 1.5\n" for s in range(0, 50, 10)))
    data = read_run(path)  # a known loss name on the line: the bare letters are something else
    assert data.signals.get("loss.d").values.tolist() == [float(f"{0.5 + s / 1000:.4f}") for s in range(0, 50, 10)]
    assert not any("read 'D' and 'G'" in w for w in data.warnings)
    bare = tmp_path / "bare.log"
    bare.write_text("".join(f"step {s} D: 0.1 G: 0.2 lossA: 0.7 lossB: 0.9\n" for s in range(0, 50, 10)))
    mapped = read_run(bare, options=ReadOptions(mapping={"loss.d": "lossA", "loss.g": "lossB"}))  # the user says which
    assert mapped.signals.get("loss.d").values.tolist() == [0.7] * 5
    assert not any("read 'D' and 'G'" in w for w in mapped.warnings)
    table = tmp_path / "metrics.csv"
    table.write_text("step,D,G\n" + "".join(f"{s},0.5,1.0\n" for s in range(0, 50, 10)))
    with pytest.raises(LogFormatError):
        read_run(table)  # a CSV column named D is no loss: the console rule is for printed lines


def _junyanz_log(path: Path, pairs: str) -> list:
    """The tiny loop printed as pytorch-CycleGAN-and-pix2pix prints its losses
    (``(epoch: e, iters: n, time: t, data: t) NAME: v ...``), its print_freq every batch."""
    stream = io.StringIO()

    def line(epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, D_G_z2):
        # pix2pix's D_real and D_fake: D's loss on each batch; here the total split 40/60.
        values = {"G_GAN": errG, "G_L1": 12.5, "D_real": 0.4 * errD, "D_fake": 0.6 * errD, "D_A": errD, "G_A": errG, "D_B": 0.1, "G_B": 0.2}
        text = " ".join(f"{k}: {values[k]:.4f}" for k in pairs.split())
        print(f"(epoch: {epoch + 1}, iters: {(i + 1) * 4}, time: 0.051, data: 0.002) {text} ", file=stream)

    logged = _tiny_gan_loop(line)
    path.write_text("================ Training Loss (Sat Dec  5 01:00:00 2026) ================\n" + stream.getvalue())
    return logged


def test_pix2pix_loss_log_reads_d_real_and_d_fake_as_d_s_loss_parts(tmp_path):
    logged = _junyanz_log(tmp_path / "loss_log.txt", "G_GAN G_L1 D_real D_fake")
    data = read_run(tmp_path / "loss_log.txt")
    assert data.format == "console"
    # D_real / D_fake are losses here, not D's outputs: no probability gap may be read from them.
    assert "d_prob.real" not in data.signals and "d_prob.fake" not in data.signals
    assert data.mapped["loss.g"] == "G_GAN" and data.mapped["loss.d"] == "D_real + D_fake"
    d = data.signals.get("loss.d")
    assert np.allclose(d.values, [float(f"{0.4 * e[2]:.4f}") + float(f"{0.6 * e[2]:.4f}") for e in logged])
    assert d.steps.tolist() == sorted(set(d.steps.tolist())) and len(d.steps) == EPOCHS * BATCHES  # epoch x iters, increasing


def test_cyclegan_loss_log_reads_one_pair_and_says_how_to_read_the_other(tmp_path):
    logged = _junyanz_log(tmp_path / "loss_log.txt", "D_A G_A D_B G_B")
    data = read_run(tmp_path / "loss_log.txt")
    assert np.allclose(data.signals.get("loss.d").values, [float(f"{e[2]:.4f}") for e in logged])
    assert any("two-domain log (CycleGAN)" in w and "--map loss.g=G_B --map loss.d=D_B" in w for w in data.warnings)
    other = read_run(tmp_path / "loss_log.txt", options=ReadOptions(mapping={"loss.d": "D_B", "loss.g": "G_B"}))
    assert other.signals.get("loss.d").values.tolist() == [0.1] * (EPOCHS * BATCHES)
    assert not any("two-domain" in w for w in other.warnings)


def test_three_public_scripts_printing_formats_are_read(tmp_path):
    """Formats a new user met in the thirty-third pass: Zeleni9/pytorch-wgan's DCGAN
    (``Epoch: [ 1] [  10/  28]``, read as no position before: 1,500 iterations as 107 rows, "too
    short"), its WGAN-CP's one-element tensors (``tensor([0.1091])``), and a tqdm bar drawn with
    ``ncols=0`` (w86763777/pytorch-gan-collections: no ``|####|``, so the bar's text was read as
    names and its steps in line order)."""
    from tqdm import tqdm

    zeleni, tensors, stream = [], [], io.StringIO()
    bar = tqdm(total=EPOCHS * BATCHES, file=stream, mininterval=0, ncols=0, desc="Training")

    def line(epoch, epochs, i, batches, errD, errG, *_):
        zeleni.append("Epoch: [%2d] [%4d/%4d] D_loss: %.8f, G_loss: %.8f" % (epoch + 1, i + 1, batches, errD, errG))
        tensors.append(f"Generator iteration: {epoch * batches + i}/{epochs * batches}, d_loss: {torch.tensor([errD])}, g_loss: {torch.tensor([errG])}")
        bar.set_postfix(loss_d="%.4f" % errD)
        bar.update(1)

    logged = _tiny_gan_loop(line)
    bar.close()
    (tmp_path / "zeleni.log").write_text("DCGAN model initalization.\n" + "\n".join(zeleni) + "\n")
    (tmp_path / "tensors.log").write_text("\n".join(tensors) + "\n")
    (tmp_path / "bar.log").write_text(stream.getvalue())
    assert "%|" not in stream.getvalue() and "loss_d=" in stream.getvalue()  # a bar without its drawing

    d = read_run(tmp_path / "zeleni.log").signals.get("loss.d")
    # Its epochs count from 1 (a log whose first epoch is 1 counts from there) and its batches from
    # 1 (printed i + 1): one batch on.
    assert d.steps.tolist() == [e * BATCHES + i + 1 for e, i, *_ in logged]
    assert np.allclose(d.values, [x[2] for x in logged], atol=1e-7)
    data = read_run(tmp_path / "tensors.log")
    assert data.signals.get("loss.g").steps.tolist() == list(range(len(logged)))
    assert np.allclose(data.signals.get("loss.d").values, [x[2] for x in logged], atol=1e-4)
    d = read_run(tmp_path / "bar.log").signals.get("loss.d")
    # One record per count, the last values drawn at it (each iteration's postfix is drawn at its
    # count and again after the update, at the next one; the final count repeats the last).
    assert d.steps.tolist() == list(range(len(logged) + 1))
    assert np.allclose(d.values[:-1], [round(x[2], 4) for x in logged], atol=1e-9) and d.values[-1] == d.values[-2]


def _plot_flush_loop(dataset: str = "8gaussians", iters: int = 60, flush_every: int = 20) -> tuple[str, list[tuple[int, float, float]]]:
    """caogang/wgan-gp's gan_toy.py, cut down: a WGAN-GP critic and G on 2-D data, the models
    printed first, then improved_wgan_training's lib/plot.py flush every ``flush_every``
    iterations (the mean of each plot's values since the last flush, names as plot file paths).
    Returns the console text and [(iter, mean disc cost, mean gen cost)]."""
    torch.manual_seed(0)
    netG = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    netD = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    optD = torch.optim.Adam(netD.parameters(), lr=1e-4, betas=(0.5, 0.9))
    optG = torch.optim.Adam(netG.parameters(), lr=1e-4, betas=(0.5, 0.9))
    out = io.StringIO()
    print(netG, file=out)
    print(netD, file=out)
    plots: dict[str, list[float]] = {}
    flushed = []
    for it in range(iters):
        real = torch.randn(64, 2)
        fake = netG(torch.randn(64, 2))
        alpha = torch.rand(64, 1)
        mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(netD(mixed).sum(), mixed, create_graph=True)
        d_cost = netD(fake.detach()).mean() - netD(real).mean() + 0.1 * ((grad.norm(2, dim=1) - 1) ** 2).mean()
        optD.zero_grad()
        d_cost.backward()
        optD.step()
        g_cost = -netD(netG(torch.randn(64, 2))).mean()
        optG.zero_grad()
        g_cost.backward()
        optG.step()
        plots.setdefault(f"tmp/{dataset}/disc cost", []).append(d_cost.item())
        plots.setdefault(f"tmp/{dataset}/gen cost", []).append(g_cost.item())
        if it % flush_every == flush_every - 1:  # lib.plot.flush()
            means = {name: float(np.mean(values)) for name, values in plots.items()}
            print("iter {}\t{}".format(it, "\t".join(f"{name}\t{value}" for name, value in means.items())), file=out)
            flushed.append((it, means[f"tmp/{dataset}/disc cost"], means[f"tmp/{dataset}/gen cost"]))
            plots.clear()
    return out.getvalue(), flushed


def test_improved_wgan_training_plot_flushes_are_read_with_their_names_last_part(tmp_path):
    text, flushed = _plot_flush_loop()
    path = tmp_path / "gan_toy.log"
    path.write_text(text)
    data = read_run(path)
    assert data.format == "console"
    d, g = data.signals.get("loss.d"), data.signals.get("loss.g")
    assert d.steps.tolist() == g.steps.tolist() == [it for it, _, _ in flushed]
    assert np.allclose(d.values, [v for _, v, _ in flushed]) and np.allclose(g.values, [v for _, _, v in flushed])


def test_a_printed_model_s_arguments_are_not_offered_as_names_to_map(tmp_path):
    # A log gandoctor cannot read whose head prints the models: their Linear(in_features=..., ...)
    # arguments are no values to name with --map; the log's own names are.
    text, _ = _plot_flush_loop()
    path = tmp_path / "train.log"
    path.write_text("\n".join(line.replace("\t", " | ").replace("disc cost", "netD").replace("gen cost", "netG") for line in text.splitlines()))
    with pytest.raises(LogFormatError) as err:
        read_run(path)
    assert "in_features" not in str(err.value) and "out_features" not in str(err.value)


def _mlp_gan(optimizer, lr: float):
    """A seeded critic-free MLP D and G on 2-D data, each with its optimizer, for the loops below."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    return D, G, optimizer(D.parameters(), lr), optimizer(G.parameters(), lr)


def test_names_and_numbers_printed_with_spaces_only_are_read_where_the_names_are_losses(tmp_path, capsys):
    # christiancosgrove/pytorch-spectral-normalization-gan: print('disc loss', d, 'gen loss', g), a
    # hinge loss on a critic-free D; the same loop's prose lines with numbers are not records.
    D, G, opt_d, opt_g = _mlp_gan(torch.optim.Adam, 2e-4)
    printed = []
    print("took 0.52 seconds to load 1797 images")
    for _ in range(20):
        real, fake = torch.randn(32, 2), G(torch.randn(32, 4))
        disc_loss = nn.ReLU()(1.0 - D(real)).mean() + nn.ReLU()(1.0 + D(fake.detach())).mean()
        opt_d.zero_grad()
        disc_loss.backward()
        opt_d.step()
        gen_loss = -D(G(torch.randn(32, 4))).mean()
        opt_g.zero_grad()
        gen_loss.backward()
        opt_g.step()
        print("disc loss", disc_loss.item(), "gen loss", gen_loss.item())
        printed.append((disc_loss.item(), gen_loss.item()))
    path = tmp_path / "train.log"
    path.write_text(capsys.readouterr().out)
    data = read_run(path)
    assert data.format == "console"
    assert data.signals.get("loss.d").values.tolist() == pytest.approx([d for d, _ in printed])
    assert data.signals.get("loss.g").values.tolist() == pytest.approx([g for _, g in printed])
    assert set(data.signals.names()) == {"loss.d", "loss.g"}  # "took 0.52 seconds", "load 1797": prose


def test_a_known_name_printed_without_a_colon_is_read_beside_the_line_s_colon_pairs(tmp_path, capsys):
    # martinarjovsky/WassersteinGAN's main.py prints '... Loss_D_real: %f Loss_D_fake %f': the last
    # pair has no colon, and was lost beside the colon pairs of the same line.
    D, G, opt_d, opt_g = _mlp_gan(torch.optim.RMSprop, 5e-5)
    fakes = []
    for g_step in range(1, 13):
        err_real, err_fake = D(torch.randn(32, 2)).mean(), D(G(torch.randn(32, 4)).detach()).mean()
        err_d = err_real - err_fake
        opt_d.zero_grad()
        err_d.backward()
        opt_d.step()
        err_g = D(G(torch.randn(32, 4))).mean()
        opt_g.zero_grad()
        err_g.backward()
        opt_g.step()
        print("[%d/%d][%d/%d][%d] Loss_D: %f Loss_G: %f Loss_D_real: %f Loss_D_fake %f"
              % (0, 25, g_step * 5, 60, g_step, err_d.item(), err_g.item(), err_real.item(), err_fake.item()))
        fakes.append(err_fake.item())
    path = tmp_path / "train.log"
    path.write_text(capsys.readouterr().out)
    data = read_run(path)
    assert set(data.signals.names()) >= {"loss.d", "loss.g", "loss.d_real", "loss.d_fake"}
    assert data.signals.get("loss.d_fake").values.tolist() == pytest.approx(fakes, abs=1e-6)


def test_a_log_without_positions_says_each_record_counts_as_one_step(tmp_path):
    # znxlwm's pytorch_MNIST_GAN.py prints one line of averages per epoch, with no iteration:
    # read in row order, 100 epochs are 100 steps, and the rules then call the run too short.
    path = tmp_path / "train.log"
    path.write_text("".join(f"[{e}/100]: loss_d: {1.2 - e / 500:.3f}, loss_g: {0.8 + e / 500:.3f}\n" for e in range(1, 101)))
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == list(range(100))
    assert any("no line gives a step, iteration or batch position: each of its 100 records counts as one step" in w
               for w in data.warnings)
    assert any("pass --record-steps N" in w for w in data.warnings)
    placed = tmp_path / "placed.log"
    placed.write_text("".join(f"step={s} d_loss={1.2:.3f} g_loss={0.8:.3f}\n" for s in range(0, 1000, 10)))
    assert not any("no line gives" in w for w in read_run(placed).warnings)
    # Told what each line stands for (an epoch of 15 batches): each record is its epoch's last iteration.
    told = read_run(path, options=ReadOptions(record_steps=15))
    assert told.signals.get("loss.d").steps.tolist() == [15 * e - 1 for e in range(1, 101)]
    assert not any("no line gives" in w for w in told.warnings)


def test_a_console_of_progress_bars_without_values_points_to_where_the_values_are(tmp_path):
    # LynnHo's train.py: tqdm bars with no postfix, the losses written to TensorBoard.
    from tqdm import tqdm

    stream = io.StringIO()
    print("ConvGenerator(\n  (net): Sequential(\n    (0): ConvTranspose2d(128, 64, kernel_size=(4, 4), stride=(1, 1), bias=False)\n  )\n)", file=stream)
    for _ in tqdm(range(3), desc="Epoch Loop", file=stream, mininterval=0):
        for _ in tqdm(range(28), desc="Inner Epoch Loop", file=stream, mininterval=0, leave=False):
            pass
    path = tmp_path / "train.log"
    path.write_text(stream.getvalue())
    with pytest.raises(LogFormatError, match="progress bars that show no values.*TensorBoard event files or a CSV"):
        read_run(path)


def test_a_record_printed_over_several_lines_under_its_position_line_is_one_step(tmp_path):
    # diegoalejogm/gans' Logger.display_status: the position on a line of its own, then the losses,
    # then D's outputs; each line used to be its own record in row order (two steps a batch) and
    # 'Batch Num: [b/B]' was no position.
    stream = io.StringIO()

    def line(epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, D_G_z2):
        print('Epoch: [{}/{}], Batch Num: [{}/{}]'.format(epoch, epochs, i, batches), file=stream)
        print('Discriminator Loss: {:.4f}, Generator Loss: {:.4f}'.format(errD, errG), file=stream)
        print('D(x): {:.4f}, D(G(z)): {:.4f}'.format(D_x, D_G_z1), file=stream)

    logged = _tiny_gan_loop(line)
    path = tmp_path / "train.log"
    path.write_text(stream.getvalue())
    data = read_run(path)
    steps = [e * BATCHES + b for e, b, *_ in logged]
    for signal, column in (("loss.d", 2), ("loss.g", 3), ("d_prob.real", 4)):
        assert data.signals.get(signal).steps.tolist() == steps
        assert data.signals.get(signal).values.tolist() == pytest.approx([row[column] for row in logged], abs=1e-4)
    assert not data.warnings


def test_a_name_printed_again_under_one_position_line_is_a_record_of_its_own(tmp_path):
    # An 'Epoch 1' / 'Iteration 11' position, then values (EmilienDupont's WGAN-GP trainer); a name
    # read twice under one position is not two values at one step.
    lines = ["Epoch 1", "Iteration 1", "d_loss: 0.5", "g_loss: 0.7", "Iteration 11", "d_loss: 0.4", "g_loss: 0.8", "d_loss: 0.3"]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    data = read_run(path)
    d = data.signals.get("loss.d")
    assert d.steps.tolist()[:2] == [1, 11] and d.values.tolist() == pytest.approx([0.5, 0.4, 0.3]) and d.steps[2] > 11
    assert data.signals.get("loss.g").steps.tolist() == [1, 11]


def test_lightning_s_rich_bar_and_model_summary_are_no_values_and_its_counts_are_positions(tmp_path):
    # Lightning 2's RichProgressBar: the summary's 'Trainable params: 190 K' and the bar's
    # '9.05it/s v_num: 0.000' were offered as names for --map; the bar's 12/29 is the batch.
    summary = "Trainable params: 190 K\nNon-trainable params: 0\nTotal params: 190 K\nTotal estimated model params size (MB): 0.761\n" \
              "Modules in train mode: 43\nModules in eval mode: 0\nTotal FLOPs: 0\n"
    bare = tmp_path / "bars.log"
    bare.write_text(summary + "Epoch 29/29 ━━━━━━━━━━━━ 29/29 0:00:03 • 0:00:00 9.05it/s v_num: 0.000\n")
    with pytest.raises(LogFormatError) as err:
        read_run(bare)
    assert "progress bars that show no values" in str(err.value) and "Trainable params" not in str(err.value)
    logged = tmp_path / "logged.log"
    logged.write_text(summary + "".join(f"Epoch 3/29 ━━━━━━ {b}/29 0:00:03 • 0:00:01 9.05it/s v_num: 0.000 d_loss: 0.5 g_loss: 1.2\n"
                                        for b in (12, 13)))
    data = read_run(logged)
    assert set(data.signals.names()) == {"loss.d", "loss.g"} and data.signals.get("loss.d").steps.tolist() == [3 * 29 + 12, 3 * 29 + 13]


def _critic_steps_log(path: Path, critic_iters: int = 3) -> list:
    """Zeleni9/pytorch-wgan's WGAN-GP console, verbatim: a line per critic step with D's mean
    outputs as ``loss_fake`` / ``loss_real`` (printed tensors), then G's line with its counter."""
    stream = io.StringIO()
    total = EPOCHS * BATCHES

    def line(epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, D_G_z2):
        g_iter = epoch * batches + i
        for d_iter in range(critic_iters):
            loss_fake, loss_real = torch.tensor(D_G_z1 + d_iter), torch.tensor(D_x + d_iter)
            print(f'  Discriminator iteration: {d_iter}/{critic_iters}, loss_fake: {loss_fake}, loss_real: {loss_real}', file=stream)
        print(f'Generator iteration: {g_iter}/{total}, g_loss: {torch.tensor(errG)}', file=stream)

    logged = _tiny_gan_loop(line)
    path.write_text("WGAN_GradientPenalty init model.\n" + stream.getvalue())
    return logged


def test_d_s_inner_steps_join_the_g_step_whose_line_follows_and_unread_names_are_offered_to_map(tmp_path):
    # D's counter ('Discriminator iteration: 2/3') used to be read as the step: it went back at every
    # G step and the log was read in row order, with a warning; the critic lines' names, which no
    # alias maps, were skipped with no word of --map.
    path = tmp_path / "train.log"
    logged = _critic_steps_log(path)
    data = read_run(path)
    assert data.signals.get("loss.g").steps.tolist() == list(range(len(logged)))
    (skipped,) = [w for w in data.warnings if "skipped" in w]
    assert f"{3 * len(logged)} of them print values named 'loss_fake', 'loss_real', which no alias maps" in skipped
    assert "--map SIGNAL=NAME" in skipped and "iteration" not in skipped.split("named")[1]

    mapped = read_run(path, options=ReadOptions(mapping={"d_out.real": "loss_real", "d_out.fake": "loss_fake"}))
    real = mapped.signals.get("d_out.real")
    assert real.steps.tolist() == list(range(len(logged)))
    # The last critic step's value before each G step (printed as D_x + 2).
    assert real.values.tolist() == pytest.approx([row[4] + 2 for row in logged], abs=1e-4)
    assert not any("goes back" in w or "loss_real" in w for w in mapped.warnings)


def test_values_printed_before_their_names_under_a_network_letter_are_read(tmp_path):
    # devnag's 1-D GAN: 'Epoch 100: D (0.69 real_err, 0.70 fake_err) G (0.69 err); Real Dist ([...]), ...'
    # could not be read at all. Its 'epoch' is an iteration, printed every print_interval.
    stream = io.StringIO()

    def line(epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, D_G_z2):
        it = epoch * batches + i
        if it % 4 == 0:
            stats = [[float(D_x), float(D_G_z1)], [float(D_G_z2), 0.5]]
            print("Epoch %s: D (%s real_err, %s fake_err) G (%s err); Real Dist (%s),  Fake Dist (%s) "
                  % (it, errD / 2, errD / 2 + 0.01, errG, stats[0], stats[1]), file=stream)

    logged = [row for row in _tiny_gan_loop(line) if (row[0] * BATCHES + row[1]) % 4 == 0]
    path = tmp_path / "train.log"
    path.write_text("Using data [Data and variances]\n" + stream.getvalue())
    data = read_run(path, options=ReadOptions(record_steps=4))
    assert data.signals.get("loss.g").values.tolist() == pytest.approx([row[3] for row in logged])
    assert data.signals.get("loss.d").values.tolist() == pytest.approx([row[2] + 0.01 for row in logged])
    assert data.signals.get("loss.d_real").values.tolist() == pytest.approx([row[2] / 2 for row in logged])
    assert "user.Real Dist" not in data.signals.names()


IGNITE_BAR_FORMAT = "{desc}[{n_fmt}/{total_fmt}] {percentage:3.0f}%|{bar}{postfix} [{elapsed}<{remaining}]"  # ignite's ProgressBar


def test_ignite_s_progress_bar_and_its_dcgan_s_iteration_lines_are_read_at_their_iterations(tmp_path):
    # pytorch-ignite's ProgressBar ('Epoch [1/3]: [5/12]  42%|####, errD=1.3, ... [00:01<00:02]': its
    # postfix after the drawing, its epochs from 1) read as an epoch summary: every redraw a step, 2,354
    # steps for 800 iterations. Its DCGAN example prints '[4/100][16/28] | iteration: 100 | errD: ...',
    # where the epoch from 1 put iteration 100 at step 128.
    from tqdm import tqdm

    bar_stream, lines = io.StringIO(), []
    bars: dict[int, tqdm] = {}

    def line(epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, D_G_z2):
        if epoch not in bars:  # one bar per epoch, as ignite resets it, starting at 1
            bars[epoch] = tqdm(total=batches, file=bar_stream, mininterval=0, initial=1, bar_format=IGNITE_BAR_FORMAT, ascii=True)
        bar = bars[epoch]
        bar.set_description(f"Epoch [{epoch + 1}/{epochs}]")  # ignite's order: description, postfix, update
        bar.set_postfix({"errD": errD, "errG": errG})
        bar.update(i + 1 - bar.n)
        iteration = epoch * batches + i + 1
        if iteration % 4 == 0:
            lines.append(f"[{epoch + 1}/{epochs}][{i + 1}/{batches}] | iteration: {iteration} | errD: {errD:.5f} | errG: {errG:.5f}")

    logged = _tiny_gan_loop(line)
    (tmp_path / "bar.log").write_text(bar_stream.getvalue())
    (tmp_path / "print.log").write_text("\n".join(lines) + "\n")
    data = read_run(tmp_path / "bar.log")
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == list(range(1, len(logged) + 1))  # one record per iteration, counted from 1
    assert set(d.values.tolist()) <= {float(f"{row[2]:.3g}") for row in logged}  # tqdm prints 3 significant digits
    assert not any("goes back" in w for w in data.warnings)
    printed = read_run(tmp_path / "print.log").signals.get("loss.d")
    assert printed.steps.tolist() == list(range(4, len(logged) + 1, 4))
    assert printed.values.tolist() == pytest.approx([row[2] for n, row in enumerate(logged, 1) if n % 4 == 0], abs=1e-5)


def test_step_names_the_step_of_console_lines_and_gandoctor_s_own_lines_are_no_records(tmp_path):
    # The reader's warning said 'use --step to name the step column', which console logs ignored; a
    # live alert printed onto a progress bar's line was read as a record at its 'step 499'.
    lines = [f"epoch: {s // 10} it: {s * 3} d_loss: 0.{60 + s % 7} g_loss: 0.8" for s in range(40)]
    lines[25] += "\rgandoctor: non_convergence (GD606 generator-hops-between-modes) from step 350, seen at step 499; top remedy: Lower"
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    default = read_run(path)
    assert default.signals.get("loss.d").steps.tolist() == list(range(0, 120, 3))  # 'it' is the step
    assert not any("goes back" in w for w in default.warnings)
    by_epoch = read_run(path, options=ReadOptions(step="epoch"))
    assert by_epoch.signals.get("loss.d").steps.tolist() == [s // 10 for s in range(40)]


def test_g_s_counter_is_the_step_and_d_s_beside_it_or_over_the_run_is_no_inner_loop(tmp_path):
    # heykeetae's SAGAN prints 'G_step [10/500], D_step[10/500], d_out_real: ...': D's counter was
    # taken for an inner loop's, every line held for a G line that never came, and the log read as one
    # record ('steps 0..0'); --step G_step was ignored too.
    stream = io.StringIO()

    def line(epoch, epochs, i, batches, errD, errG, D_x, *_):
        step = epoch * batches + i + 1
        print(f"Elapsed [0:00:0{step % 10}.96], G_step [{step}/{epochs * batches}], D_step[{step}/{epochs * batches}], "
              f"d_loss: {errD:.4f},  g_loss: {errG:.4f}, d_out_real: {D_x:.4f}", file=stream)

    logged = _tiny_gan_loop(line)
    path = tmp_path / "sagan.log"
    path.write_text(stream.getvalue())
    steps = list(range(1, len(logged) + 1))
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == steps
    assert data.signals.get("loss.d").values.tolist() == pytest.approx([row[2] for row in logged], abs=1e-4)
    assert data.signals.get("d_out.real").values.tolist() == pytest.approx([row[4] for row in logged], abs=1e-4)  # D's raw output
    assert read_run(path, options=ReadOptions(step="G_step")).signals.get("loss.g").steps.tolist() == steps
    # D's counter alone, over the run's length, counts the run's steps.
    (tmp_path / "d_only.log").write_text(stream.getvalue().replace("G_step", "Gen"))
    assert read_run(tmp_path / "d_only.log").signals.get("loss.d").steps.tolist() == steps


def test_d_s_inner_lines_with_no_g_line_between_are_not_merged_into_one_record(tmp_path):
    # A D loop printed without G's line: each pass of the loop (its counter begins again) is a record.
    lines = [f"Discriminator iteration: {k}/3, d_loss: {0.5 + g / 100 + k / 1000:.4f}" for g in range(20) for k in range(3)]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    d = read_run(path).signals.get("loss.d")
    assert len(d) == 20 and d.values.tolist() == pytest.approx([0.5 + g / 100 + 0.002 for g in range(20)])  # each pass's last


def test_a_global_step_beside_the_epoch_is_the_step_with_or_without_step_named(tmp_path):
    # torch_mimicry's Logger prints '[Epoch 2/20][Global Step: 40/600]' on a line of its own, then
    # one '| name: value' line per metric: read as batch 40 of 600 in epoch 2, a 600-step run spanned
    # 12,000 steps; with --step "Global Step" each value line became a record of its own.
    stream = io.StringIO()
    per_epoch = 6

    def line(epoch, epochs, i, batches, errD, errG, D_x, D_G_z1, *_):
        step = epoch * batches + i + 1
        print(f"INFO: [Epoch {step // per_epoch + 1}/{epochs * batches // per_epoch}][Global Step: {step}/{epochs * batches}] ", file=stream)
        for name, value in (("D(G(z))", D_G_z1), ("D(x)", D_x), ("errD", errD), ("errG", errG), ("lr_D", 2e-4)):
            print(f"| {name}: {value:.4f}", file=stream)
        print("| (0.1000 sec/idx)", file=stream)

    logged = _tiny_gan_loop(line)
    path = tmp_path / "mimicry.log"
    path.write_text(stream.getvalue())
    steps = list(range(1, len(logged) + 1))
    for options in (None, ReadOptions(step="Global Step")):
        data = read_run(path, options=options)
        assert data.signals.get("loss.d").steps.tolist() == steps, options
        assert data.signals.get("loss.d").values.tolist() == pytest.approx([row[2] for row in logged], abs=1e-4)
        assert data.signals.get("d_prob.fake").values.tolist() == pytest.approx([row[5] for row in logged], abs=1e-4)


def test_a_closing_summary_that_repeats_the_last_epoch_s_values_is_no_record(tmp_path):
    # d2l's train() prints 'epoch 3, loss_D 0.540, loss_G 1.027' per epoch, then 'loss_D 0.540,
    # loss_G 1.027, 5641.0 examples/sec' once: read as one more record, 16 epochs were 17.
    lines = [f"epoch {e}, loss_D 0.{400 + 7 * e}, loss_G 1.{100 + e:03d}" for e in range(1, 17)]
    path = tmp_path / "d2l.log"
    path.write_text("\n".join([*lines, "loss_D 0.512, loss_G 1.116, 5641.0 examples/sec"]) + "\n")
    assert len(read_run(path).signals.get("loss.d")) == 16
    # Lines with no position at all are records in row order, repeated values or not.
    (tmp_path / "rows.log").write_text("loss_D 0.5, loss_G 1.0\n" * 5)
    assert len(read_run(tmp_path / "rows.log").signals.get("loss.d")) == 5


def test_values_in_a_progress_bar_s_description_are_at_its_count(tmp_path):
    # rosinality's StyleGAN2 sets 'd: 1.3100; g: 0.7200; r1: ...' as its tqdm bar's description at
    # every iteration: lower-case bare names were refused, and read in row order (every redraw a
    # record) 500 iterations spanned 1,000 steps.
    parts = ["  0%|          | 0/50 [00:00<?, ?it/s]"]
    for i in range(50):
        desc = f"d: {1 + i / 1000:.4f}; g: {2 + i / 1000:.4f}; r1: 0.0100; path: 0.0200"
        parts.append(f"{desc}:  {2 * i}%|#         | {i}/50 [00:0{i % 10}<00:01, 40.00it/s]")
        parts.append(f"{desc}:  {2 * i + 2}%|#         | {i + 1}/50 [00:0{i % 10}<00:01, 40.00it/s]")
    path = tmp_path / "stylegan2.log"
    path.write_text("\r".join(parts) + "\n")
    data = read_run(path)
    loss = data.signals.get("loss.d")
    assert loss.steps.tolist() == list(range(51))  # the closing redraw at 50 repeats iteration 49's values
    assert loss.values.tolist()[:50] == pytest.approx([1 + i / 1000 for i in range(50)])
    assert data.signals.get("loss.g").values.tolist()[:50] == pytest.approx([2 + i / 1000 for i in range(50)])


def test_a_bare_epoch_before_the_batch_of_its_total_places_the_line(tmp_path):
    # The Packt book's conditional GAN prints 'Epoch {} [{}/{}] loss_D: ... loss_G: ... time: ...'
    # every fifth batch of 15: read as one step a line, 1500 iterations were 200 steps.
    path = tmp_path / "log.txt"
    lines = [f"Epoch {e} [{b}/15] loss_D: {0.5 + 0.01 * e:.4f} loss_G: {1.0 + 0.01 * b:.4f} time: 0.57" for e in range(20) for b in (5, 10)]
    path.write_text("\n".join(lines) + "\n")
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == [e * 15 + b for e in range(20) for b in (5, 10)]
    assert not any("no line gives a step" in w for w in data.warnings)


def test_lightning_s_tqdm_bar_reset_at_an_epoch_s_end_is_no_record():
    # A real Lightning 2.6 log (TQDMProgressBar, tee'd): at each epoch's end the bar is redrawn at
    # 0/29 with the last batch's postfix, which read as the step going back: the rest of the log
    # was read in row order, 300 batches as 600 steps.
    log = Path(__file__).resolve().parent.parent / "fixtures" / "public" / "nocotan_gan_lightning_tqdm.console.log.gz"
    data = read_run(log)
    d = data.signals.get("loss.d")
    assert (int(d.steps[0]), int(d.steps[-1])) == (1, 300)
    assert not any("goes back" in w for w in data.warnings)


def test_a_console_whose_first_values_come_after_its_head_is_still_a_console():
    # jalola/improved-wgan-pytorch prints counters and timings at every critic step and its losses
    # only at each flush (its lib/plot lines): the first is line 601 here (4,600 at its default
    # saving_step), past the head detection read, and the log was "not a log gandoctor can read".
    log = Path(__file__).resolve().parent.parent / "fixtures" / "public" / "jalola_wgangp_healthy.console.log.gz"
    data = read_run(log)
    assert data.format == "console" and data.signals.get("loss.d").steps.tolist()[:2] == [25, 50]


def test_pix2pix_s_iters_count_images_divided_by_the_batch_size_of_its_options_file(tmp_path):
    # pytorch-CycleGAN-and-pix2pix's checkpoint folder holds loss_log.txt and train_opt.txt; its
    # `iters` grows by batch_size (600 iterations at 16 read as steps 160..9600). A real loss log
    # of 600 iterations at batch 16, beside the options file as upstream's print_options writes it.
    import gzip

    log = tmp_path / "loss_log.txt"
    log.write_bytes(gzip.decompress((Path(__file__).resolve().parent.parent / "fixtures" / "public" / "pix2pix_healthy_loss_log.txt.gz").read_bytes()))
    assert int(read_run(log).signals.get("loss.g").steps[-1]) == 9600  # without the options: images
    (tmp_path / "train_opt.txt").write_text(
        "----------------- Options ---------------\n"
        + "{:>25}: {:<30}{}\n".format("batch_size", "16", "\t[default: 1]")
        + "{:>25}: {:<30}{}\n".format("beta1", "0.5", "")
        + "----------------- End -------------------\n"
    )
    data = read_run(log)
    steps = data.signals.get("loss.g").steps
    assert int(steps[0]) == 10 and int(steps[-1]) == 600
    assert any("divided by the batch_size 16 of train_opt.txt" in w for w in data.warnings)


def test_the_console_of_train_py_is_divided_by_the_batch_size_of_the_options_block_it_prints(tmp_path):
    # The same run's console (`python train.py ... > console.txt`, away from its checkpoint folder)
    # prints the options block before training: read in images, it was 4 times longer than its
    # loss_log.txt (CycleGAN at batch 4: steps 40..2680 against 10..670), and the diagnosis differed.
    import gzip

    options = (
        "----------------- Options ---------------\n"
        + "{:>25}: {:<30}{}\n".format("batch_size", "16", "\t[default: 1]")
        + "".join("{:>25}: {:<30}{}\n".format(f"option_{i}", i, f"\t[default: {i + 1}]") for i in range(12))
        + "----------------- End -------------------\n"
    )
    log = gzip.decompress((Path(__file__).resolve().parent.parent / "fixtures" / "public" / "pix2pix_healthy_loss_log.txt.gz").read_bytes())
    console = tmp_path / "console.txt"
    console.write_bytes(options.encode() + log)
    data = read_run(console)
    steps = data.signals.get("loss.g").steps
    assert int(steps[0]) == 10 and int(steps[-1]) == 600
    assert any("divided by the batch_size 16 of the options block it prints" in w for w in data.warnings)
    assert not any("'default'" in w for w in data.warnings)  # an option's [default: 1] is no series to --map


def test_pytorch_gan_zoo_s_scale_and_iteration_are_the_step():
    # `[scale : iter] loss G : .. loss D : ..`, the iteration from 0 again at each PGAN scale:
    # 2,800 DCGAN iterations were read as 112 steps in row order.
    public = Path(__file__).resolve().parent.parent / "fixtures" / "public"
    dcgan = read_run(public / "gan_zoo_dcgan_lr5.console.log.gz").signals.get("loss.g").steps
    assert (int(dcgan[0]), int(dcgan[-1]), len(dcgan)) == (25, 2800, 112)
    pgan = read_run(public / "gan_zoo_pgan_healthy.console.log.gz").signals.get("loss.d").steps
    assert len(pgan) == 48 and int(pgan[-1]) == 1200 and (np.diff(pgan) > 0).all()  # three scales, one run


def test_a_bce_log_whose_g_loss_says_d_rejects_every_fake_is_not_g_dominance():
    # pytorch_GAN_zoo's DCGAN at lr 5: D's loss 28-99 (it scores the reals 0 too), G's 80-100.
    from gandoctor import analyze

    report = analyze(Path(__file__).resolve().parent.parent / "fixtures" / "public" / "gan_zoo_dcgan_lr5.console.log.gz")
    assert "generator_dominance" not in {f.mode for f in report.findings}


def test_a_word_after_a_pair_s_colon_is_that_pair_s_value_not_part_of_the_next_name(tmp_path):
    # StudioGAN: 'ada_p: No Discriminator_loss: 0.0066' (and 'Topk:  N/A ada_p: 0.009'); a two-word
    # name an alias knows stays whole ('run: D loss: 0.5').
    path = tmp_path / "train.log"
    path.write_text("".join(
        f"Step: {s} temperature: no ada_p: No Discriminator_loss: 0.{s + 1} Generator_loss: 5.1 Topk:  N/A ada_p: 0.25\n"
        for s in range(1, 6)
    ))
    data = read_run(path)
    assert data.mapped["loss.d"] == "Discriminator_loss" and data.signals.get("loss.d").values.tolist() == [0.2, 0.3, 0.4, 0.5, 0.6]
    assert "user.ada_p" in data.signals
    other = tmp_path / "other.log"
    other.write_text("".join(f"step {s} run: D loss: 0.5 G loss: 1.0\n" for s in range(5)))
    assert read_run(other).mapped["loss.d"] == "D loss"
