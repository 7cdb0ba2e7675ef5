"""gandoctor.readers.tensorboard and .images: event files written by torch's SummaryWriter,
scalars (simple_value and tensor form), add_scalars folders, sample grids, restarts, damage."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gandoctor import LogFormatError, read_run
from gandoctor.readers import ReadOptions, expand_runs, images
from gandoctor.readers import tensorboard as tb

SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter
make_grid = pytest.importorskip("torchvision.utils").make_grid


def write_scalars(folder: Path, steps=range(100), new_style: bool = False, **extra) -> Path:
    w = SummaryWriter(str(folder))
    for s in steps:
        w.add_scalar("Loss/D", 0.5 + 0.001 * s, s, new_style=new_style)
        w.add_scalar("Loss/G", 2.0 - 0.001 * s, s, new_style=new_style)
        w.add_scalar("D(x)", 0.9, s, new_style=new_style)
        for tag, value in extra.items():
            w.add_scalar(tag, value, s, new_style=new_style)
    w.close()
    return folder


def event_file(folder: Path) -> Path:
    return next(p for p in sorted(folder.iterdir()) if "tfevents" in p.name)


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, payload length) of each record, walked independently of the reader."""
    raw = path.read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(raw):
        (length,) = struct.unpack_from("<Q", raw, pos)
        out.append((pos, length))
        pos += 16 + length
    return out


# -- scalars ---------------------------------------------------------------------------------
def test_simple_value_scalars_map_onto_signals(tmp_path):
    run = write_scalars(tmp_path / "run")
    data = read_run(run)
    assert data.format == "tensorboard" and data.warnings == ()
    assert data.signals.names() == ["d_prob.real", "loss.d", "loss.g"]
    assert dict(data.mapped) == {"loss.d": "Loss/D", "loss.g": "Loss/G", "d_prob.real": "D(x)"}
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == list(range(100))
    assert np.allclose(d.values, [0.5 + 0.001 * s for s in range(100)], atol=1e-6)
    assert data.records == 300


def test_tensor_form_scalars_read_the_same(tmp_path):
    old = read_run(write_scalars(tmp_path / "old"))
    new = read_run(write_scalars(tmp_path / "new", new_style=True))
    for name in old.signals.names():
        assert old.signals.get(name).steps.tolist() == new.signals.get(name).steps.tolist()
        assert np.allclose(old.signals.get(name).values, new.signals.get(name).values)


def test_one_event_file_reads_like_its_run_folder(tmp_path):
    run = write_scalars(tmp_path / "run")
    a, b = read_run(run), read_run(event_file(run))
    assert a.records == b.records and a.signals.names() == b.signals.names()


def test_non_finite_values_are_kept_as_data(tmp_path):
    w = SummaryWriter(str(tmp_path))
    for s, v in enumerate([1.0, math.nan, math.inf, 0.5]):
        w.add_scalar("loss_D", v, s)
    w.close()
    d = read_run(tmp_path).signals.get("loss.d")
    assert d.nonfinite.tolist() == [0, 1, 1, 0]


def test_add_scalars_subfolders_belong_to_the_run(tmp_path):
    w = SummaryWriter(str(tmp_path / "run"))
    for s in range(20):
        w.add_scalars("loss", {"D": 0.7, "G": 1.5}, s)
        w.add_scalars("grad_norm", {"D": 3.0}, s)
    w.close()
    assert expand_runs([tmp_path / "run"]) == [tmp_path / "run"]
    data = read_run(tmp_path / "run")
    assert dict(data.mapped) == {"loss.d": "loss_D", "loss.g": "loss_G", "grad_norm.d": "grad_norm_D"}
    assert data.signals.get("loss.g").values.tolist() == [1.5] * 20


@pytest.mark.parametrize("group, keys", [("losses/g-and-d", ("d", "g")), ("losses", ("discriminator", "generator")), ("loss", ("critic", "gen"))])
def test_add_scalars_keys_naming_a_player_under_a_loss_group_are_its_loss(tmp_path, group, keys):
    # gordicaleksa/pytorch-GANs: add_scalars('losses/g-and-d', {'g': ..., 'd': ...}) read as two
    # unmapped scalars, "NOT JUDGED" on every run of its three scripts.
    with SummaryWriter(str(tmp_path / "run")) as w:
        for s in range(20):
            w.add_scalars(group, {keys[0]: 0.5, keys[1]: 1.5}, s)
    data = read_run(tmp_path / "run")
    assert data.signals.get("loss.d").values.tolist() == [0.5] * 20 and data.signals.get("loss.g").values.tolist() == [1.5] * 20
    assert data.mapped["loss.d"] == f"{group.replace('/', '_')}_{keys[0]}"


def test_scalars_named_for_the_players_alone_are_their_losses_with_a_warning(tmp_path):
    # crcrpar/pytorch.sngan_projection: add_scalar('dis', ...) and add_scalar('gen', ...) beside
    # 'fid' read NOT JUDGED, 0 rules checked, until --map named them.
    with SummaryWriter(str(tmp_path / "run")) as w:
        for s in range(20):
            w.add_scalar("dis", 0.5, s)
            w.add_scalar("gen", 1.5, s)
            w.add_scalar("fid", -1000.0, s)
    data = read_run(tmp_path / "run")
    assert data.signals.get("loss.d").values.tolist() == [0.5] * 20 and data.signals.get("loss.g").values.tolist() == [1.5] * 20
    assert (data.mapped["loss.d"], data.mapped["loss.g"]) == ("dis", "gen")
    assert any("read 'dis' as D's loss and 'gen' as G's" in w for w in data.warnings)
    # Two names for one player, or a --map naming a loss: nothing is guessed.
    with SummaryWriter(str(tmp_path / "two")) as w:
        for s in range(20):
            for tag in ("d", "dis", "g"):
                w.add_scalar(tag, 0.5, s)
    with pytest.raises(LogFormatError, match="no name in this log maps"):
        read_run(tmp_path / "two")


def test_stylegan_s_kimg_steps_are_g_iterations_where_its_training_options_give_the_batch(tmp_path):
    # StyleGAN2-ADA writes global_step=int(kimg): at its batch of 32 a tick of 4 kimg is 125 iterations.
    import json

    with SummaryWriter(str(tmp_path / "run")) as w:
        for kimg in range(0, 40, 4):
            w.add_scalar("Loss/D/loss", 0.5, kimg)
            w.add_scalar("Loss/G/loss", 1.5, kimg)
            w.add_scalar("Progress/kimg", float(kimg), kimg)
    assert read_run(tmp_path / "run").signals.get("loss.d").steps.tolist() == list(range(0, 40, 4))
    (tmp_path / "run" / "training_options.json").write_text(json.dumps({"total_kimg": 25000, "batch_size": 32, "kimg_per_tick": 4}))
    data = read_run(tmp_path / "run")
    assert data.signals.get("loss.d").steps.tolist() == [round(k * 1000 / 32) for k in range(0, 40, 4)]
    assert any("steps count kimg: read as G iterations" in w for w in data.warnings)


def test_gordicaleksa_s_own_tensorboard_log_is_read_and_judged():
    # Its vanilla GAN at lr 5 (the two add_scalars folders of a real run; the digit oracle: one
    # class from iteration 70, G frozen): G's BCE loss at its clamp, D's loss 2-8.
    from gandoctor import analyze

    report = analyze(Path(__file__).resolve().parent.parent / "fixtures" / "public" / "gordic_vanilla_lr5_tb")
    assert {f.mode for f in report.findings} == {"vanishing_gradients"}  # not G dominance beside G's loss at the clamp


def test_a_short_run_whose_critic_loss_blew_up_from_its_first_record_reads_exploding():
    # jalola/improved-wgan-pytorch at lr 5, its own TensorBoard log (120 iterations): the critic's
    # loss 5e26 from the first record; read "exploding gradients: clear" (GD506 needed 150 steps).
    from gandoctor import analyze

    report = analyze(Path(__file__).resolve().parent.parent / "fixtures" / "public" / "jalola_wgangp_lr5_tb")
    assert report.last_step < 150 and "exploding_gradients" in {f.mode for f in report.findings}


def test_a_folder_of_one_writer_per_metric_is_one_run_named_by_its_folders(tmp_path):
    # torch_mimicry's Logger: a SummaryWriter per metric at data/<metric>/, the scalar under its
    # group's tag ('loss' for errD and errG); it read as 7 one-metric runs, none mappable.
    groups = {"errD": "loss", "errG": "loss", "D(x)": "prob", "D(G(z))": "prob", "lr_D": "lr", "lr_G": "lr"}
    for metric, group in groups.items():
        with SummaryWriter(str(tmp_path / "log" / "data" / metric)) as w:
            for s in range(0, 200, 10):
                w.add_scalar(group, {"errD": 1.2, "errG": 0.8}.get(metric, 0.5), s)
    with SummaryWriter(str(tmp_path / "log" / "data" / "img")) as w:
        w.add_image("fake_vis", torch.rand(3, 16, 16), 0)
    assert expand_runs([tmp_path / "log"]) == [tmp_path / "log"]
    data = read_run(tmp_path / "log")
    assert dict(data.mapped) == {
        "loss.d": "errD", "loss.g": "errG", "d_prob.real": "D(x)", "d_prob.fake": "D(G(z))", "opt.lr_d": "lr_D", "opt.lr_g": "lr_G",
        "img.diversity": "img/fake_vis",
    }
    assert data.signals.get("loss.d").values.tolist() == pytest.approx([1.2] * 20)
    # Separate experiments that log one scalar each under the same tag stay separate runs.
    for name in ("exp1", "exp2"):
        with SummaryWriter(str(tmp_path / "runs" / name)) as w:
            for s in range(5):
                w.add_scalar("loss", 1.0, s)
    assert expand_runs([tmp_path / "runs"]) == [tmp_path / "runs" / "exp1", tmp_path / "runs" / "exp2"]


def test_unmapped_tags_are_user_signals_and_map_option_wins(tmp_path):
    run = write_scalars(tmp_path / "run", **{"critic/W_distance": 0.3})
    data = read_run(run)
    assert "user.critic_w_distance" in data.signals.names()
    forced = read_run(run, options=ReadOptions(mapping={"loss.d": "critic/W_distance"}))
    assert forced.mapped["loss.d"] == "critic/W_distance"
    assert forced.signals.get("loss.d").values.tolist() == pytest.approx([0.3] * 100)
    assert "user.loss_d" in forced.signals.names()  # the alias lost to --map, kept as data


def test_two_tags_for_one_signal_do_not_interleave(tmp_path):
    run = write_scalars(tmp_path / "run", errD=9.0)
    data = read_run(run)
    assert data.mapped["loss.d"] == "Loss/D" and "user.errd" in data.signals.names()
    assert any("'errD' also looks like loss.d" in w for w in data.warnings)


def test_nothing_mappable_lists_names_found_and_expected(tmp_path):
    w = SummaryWriter(str(tmp_path))
    w.add_scalar("lr", 0.1, 0)
    w.close()
    with pytest.raises(LogFormatError, match=r"found: 'lr'.*expected: loss\.d"):
        read_run(tmp_path)


# -- several files, several runs -------------------------------------------------------------
def test_restart_in_a_second_file_keeps_history_and_warns(tmp_path):
    run = tmp_path / "run"
    write_scalars(run, steps=range(60))
    write_scalars(run, steps=range(40, 100))  # resumed from a checkpoint at step 40
    files = [p for p in run.iterdir() if "tfevents" in p.name]
    assert len(files) == 2
    data = read_run(run)
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == list(range(100))
    assert any("steps restart at 40" in w and "re-logged values" in w for w in data.warnings)


def test_parent_folder_of_runs_expands_and_a_single_read_names_them(tmp_path):
    for name in ("a", "b"):
        write_scalars(tmp_path / "runs" / name, steps=range(10))
    runs = expand_runs([tmp_path / "runs"])
    assert runs == [tmp_path / "runs" / "a", tmp_path / "runs" / "b"]
    with pytest.raises(LogFormatError, match="holds 2 TensorBoard runs"):
        read_run(tmp_path / "runs")


# -- damage ----------------------------------------------------------------------------------
def _damaged(tmp_path: Path, how: str) -> tuple[Path, int]:
    run = write_scalars(tmp_path / "run")
    path = event_file(run)
    raw = bytearray(path.read_bytes())
    offsets = record_offsets(path)
    middle, length = offsets[len(offsets) // 2]
    if how == "truncated":
        raw = raw[: len(raw) - 7]
    elif how == "crc":
        raw[middle + 12 + length - 1] ^= 0xFF  # last payload byte: the value
    elif how == "length":
        raw[middle : middle + 8] = b"\xff" * 8
    elif how == "garbage_inside":
        raw[middle : middle] = b"\x00garbage\x13" * 5
    path.write_bytes(bytes(raw))
    return path, middle


@pytest.mark.parametrize(
    "how,lost,fragment",
    [
        ("truncated", 1, "the last record is cut off"),
        ("crc", 1, "fails its CRC check; skipped"),
        ("length", 1, "damaged; skipped to the next valid record"),
        ("garbage_inside", 0, "damaged; skipped to the next valid record"),
    ],
)
def test_damage_keeps_the_valid_records_and_says_where(tmp_path, how, lost, fragment):
    path, middle = _damaged(tmp_path, how)
    data = read_run(path)
    assert data.records == 300 - lost
    assert any(str(path) in w and fragment in w for w in data.warnings), data.warnings
    if how in ("crc", "length", "garbage_inside"):
        assert any(f"byte {middle}" in w or f"bytes {middle}-" in w for w in data.warnings)


def test_the_python_crc_fallback_agrees_with_the_c_one():
    for blob in (b"", b"a", b"123456789", bytes(range(256)) * 3):
        assert tb.python_crc32c(blob) == (tb._C_CRC[1](blob) if tb._C_CRC else tb.python_crc32c(blob))
    assert tb.python_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_without_a_c_crc_a_damaged_length_is_still_found(tmp_path, monkeypatch):
    path, middle = _damaged(tmp_path, "length")
    monkeypatch.setattr(tb, "_C_CRC", None)
    data = read_run(path)
    assert data.records == 299
    assert any(f"bytes {middle}-" in w for w in data.warnings)


def test_empty_and_header_only_files_are_errors(tmp_path):
    empty = tmp_path / "events.out.tfevents.1.host"
    empty.write_bytes(b"")
    with pytest.raises(LogFormatError, match="empty event file"):
        read_run(empty)
    w = SummaryWriter(str(tmp_path / "nothing"))
    w.close()
    with pytest.raises(LogFormatError, match="no usable records"):
        read_run(tmp_path / "nothing")


def test_binary_garbage_named_like_an_event_file_is_an_error(tmp_path):
    path = tmp_path / "events.out.tfevents.1.host"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(LogFormatError):
        read_run(path)


# -- sample grids ----------------------------------------------------------------------------
def _grids(folder: Path, collapse_from: int, how: str = "make_grid", n: int = 16) -> Path:
    torch.manual_seed(0)
    w = SummaryWriter(str(folder))
    # Smooth pictures (upsampled 5x5 noise), not pixel noise: tiles have edges, like samples.
    fixed = torch.nn.functional.interpolate(torch.rand(n, 3, 5, 5), size=(20, 20), mode="bilinear", align_corners=False)
    for s in range(0, 500, 50):
        w.add_scalar("loss_D", 0.6, s)
        batch = fixed + 0.01 * s / 500
        if s >= collapse_from:
            batch = batch[:1].repeat(n, 1, 1, 1)
        batch = batch.clamp(0, 1)
        if how == "make_grid":
            w.add_image("samples", make_grid(batch, nrow=8), s)
            w.add_image("real_images", make_grid(torch.rand(n, 3, 20, 20)), s)
        else:
            w.add_images("samples", batch, s)
    w.close()
    return folder


@pytest.mark.parametrize("how,n", [("make_grid", 16), ("add_images", 16), ("add_images", 4)])
def test_sample_grids_become_image_signals_that_show_collapse(tmp_path, how, n):
    data = read_run(_grids(tmp_path / how, collapse_from=250, how=how, n=n))
    div = data.signals.get("img.diversity")
    dup = data.signals.get("img.dup_rate")
    assert div.steps.tolist() == list(range(0, 500, 50))
    assert data.signals.get("img.tiles").values.tolist() == [float(n)] * 10
    assert (div.values[:5] > 0.2).all() and (div.values[5:] < 1e-6).all()
    assert dup.values[:5].tolist() == [0.0] * 5 and dup.values[5:].tolist() == [1.0] * 5
    change = data.signals.get("img.change")
    assert change.steps.tolist() == list(range(50, 500, 50))
    assert change.values[0] < 0.05 and change.values[4] > 0.2  # small drift, then the jump to one sample
    assert data.mapped["img.diversity"] == "samples"
    if how == "make_grid":
        assert any("'real_images' not used" in w for w in data.warnings)


def test_make_grid_layouts_are_inferred_with_any_column_count():
    torch.manual_seed(1)
    for n, nrow, side in ((64, 8, 28), (10, 4, 32), (6, 3, 16), (25, 5, 12)):
        grid = make_grid(torch.rand(n, 3, side, side), nrow=nrow, padding=2)
        img = (grid.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        layout = images.infer_layout(img)
        assert layout is not None and (layout.tile_h, layout.tile_w, layout.cols) == (side, side, nrow)
        assert len(images.tiles(img, layout)) == n


def test_a_plain_picture_is_not_a_grid_unless_the_tile_is_given(tmp_path):
    img = (np.random.default_rng(0).random((48, 70, 3)) * 255).astype(np.uint8)
    assert images.infer_layout(img) is None
    layout = images.infer_layout(img, tile=(48, 35))
    assert layout is not None and (layout.rows, layout.cols, layout.pad) == (1, 2, 0)


def test_grid_tile_option_splits_an_otherwise_unreadable_grid(tmp_path):
    w = SummaryWriter(str(tmp_path))
    rng = np.random.default_rng(0)
    for s in range(3):
        w.add_scalar("loss_D", 0.5, s)
        w.add_image("fake", rng.random((3, 30, 90)), s)  # three 30x30 tiles, no padding, not square-guessable? it is: 90 = 3*30
        w.add_image("odd", rng.random((3, 30, 100)), s)
    w.close()
    data = read_run(tmp_path, options=ReadOptions(mapping={"img.diversity": "odd"}))
    assert "img.diversity" not in data.signals.names()
    assert any("does not split into a grid" in w and "--grid-tile" in w for w in data.warnings)
    tiled = read_run(tmp_path, options=ReadOptions(mapping={"img.diversity": "odd"}, grid_tile=(30, 50)))
    assert tiled.signals.get("img.tiles").values.tolist() == [2.0] * 3


def test_crc32c_many_equals_one_at_a_time():
    rng = np.random.default_rng(3)
    blob = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    lengths = np.concatenate([np.full(100, 37), np.full(40, 45), rng.integers(0, 2000, 30)]).astype(np.int64)
    starts = rng.integers(0, 20_000 - 2000, lengths.shape[0]).astype(np.int64)
    got = tb.crc32c_many(blob, starts, lengths, tb.python_crc32c)
    assert got.tolist() == [tb.python_crc32c(blob[a : a + n]) for a, n in zip(starts.tolist(), lengths.tolist())]


@pytest.mark.parametrize("vector", [True, False])
def test_a_damaged_record_among_many_is_found_by_either_crc_path(tmp_path, monkeypatch, vector):
    monkeypatch.setattr(tb, "VECTOR_CRC", vector)
    path, middle = _damaged(tmp_path, "crc")
    data = read_run(path)
    assert data.records == 299 and any(f"byte {middle}: record fails its CRC check" in w for w in data.warnings)


def test_d_loss_in_two_tags_is_read_as_their_sum(tmp_path):
    # add_scalar writes each tag as its own event: the parts of one step meet across records.
    w = SummaryWriter(str(tmp_path / "run"))
    for s in range(60):
        w.add_scalar("Loss/D_real", 0.25, s)
        w.add_scalar("Loss/D_fake", 0.5 + 0.01 * s, s)
        w.add_scalar("Loss/G", 2.0, s)
    w.close()
    data = read_run(tmp_path / "run")
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == list(range(60))
    assert np.allclose(d.values, [0.75 + 0.01 * s for s in range(60)], atol=1e-6)
    assert data.mapped["loss.d"] == "Loss/D_real + Loss/D_fake"


def test_a_log_tagged_loss_alone_says_which_names_to_map(tmp_path):
    """pytorch-gan-collections logs D's loss under the tag ``loss`` beside its sample grids: the
    grids were read, the loss as ``user.loss``, and the report said NOT JUDGED with no word of
    ``--map``. A warning names the log's own scalars."""
    w = SummaryWriter(str(tmp_path / "tb"))
    torch.manual_seed(0)
    for s in range(50):
        w.add_scalar("loss", 1.3 - 0.001 * s, s)
        if s % 10 == 0:  # its sample grids: the log is read (and only said NOT JUDGED) for them
            w.add_image("sample", make_grid(torch.rand(16, 1, 8, 8), nrow=4), s)
    w.close()
    data = read_run(tmp_path / "tb")
    assert "loss.d" not in data.signals and "user.loss" in data.signals
    assert any("the log's own scalars: loss" in w and "--map loss.d=NAME" in w for w in data.warnings)
    mapped = read_run(tmp_path / "tb", options=ReadOptions(mapping={"loss.d": "loss"}))
    assert "loss.d" in mapped.signals and not any("own scalars" in w for w in mapped.warnings)


def test_d_and_g_logged_against_their_own_counters_are_said(tmp_path):
    # LynnHo's DCGAN-LSGAN-WGAN-GP-DRAGAN with n_d=5: D/* at each of D's steps, G/* at each of G's.
    w = SummaryWriter(str(tmp_path / "two"))
    for s in range(1, 501):
        w.add_scalar("D/d_loss", -1.0, s)
        if s % 5 == 0:
            w.add_scalar("G/g_loss", 0.5, s // 5)
    w.close()
    data = read_run(tmp_path / "two")
    assert {"loss.d", "loss.g"} <= set(data.signals.names())
    (said,) = [m for m in data.warnings if "own counter" in m]
    assert "D/d_loss) runs to step 500" in said and "G/g_loss) to step 100" in said
    # G logged every fifth step of one counter, as PyTorch-GAN's wgan_gp.py: nothing to say.
    w = SummaryWriter(str(tmp_path / "one"))
    for s in range(1, 501):
        w.add_scalar("D/d_loss", -1.0, s)
        if s % 5 == 0:
            w.add_scalar("G/g_loss", 0.5, s)
    w.close()
    assert not [m for m in read_run(tmp_path / "one").warnings if "own counter" in m]


def test_losses_under_their_class_names_are_read_and_map_names_work_as_the_warning_shows_them(tmp_path):
    # torchgan logs 'Losses/MinimaxDiscriminatorLoss': unread, the warning offered it as
    # 'losses_minimaxdiscriminatorloss', and --map with that name matched nothing without a word.
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "tb")) as writer:
        for step in range(1, 41):
            writer.add_scalar("Losses/MinimaxDiscriminatorLoss", 1.2 - step / 100, step)
            writer.add_scalar("Losses/MinimaxGeneratorLoss", 0.8 + step / 100, step)
            writer.add_scalar("Running_Discriminator_Loss", 1.1, step)
            writer.add_scalar("Train/adv", 0.5, step)
    data = read_run(tmp_path / "tb")
    assert data.mapped == {"loss.d": "Losses/MinimaxDiscriminatorLoss", "loss.g": "Losses/MinimaxGeneratorLoss"} | {
        k: v for k, v in data.mapped.items() if k not in ("loss.d", "loss.g")}
    assert "user.running_discriminator_loss" in data.signals  # a running mean is no step's loss
    shown = read_run(tmp_path / "tb", options=ReadOptions(mapping={"user.adv": "train_adv"}))
    assert "user.adv" in shown.signals  # the name as the warnings show it
    typo = read_run(tmp_path / "tb", options=ReadOptions(mapping={"user.adv": "train_avd"}))
    assert any("--map user.adv=train_avd matched no name" in w for w in typo.warnings)
