"""gandoctor.readers: format detection, the CSV and JSON Lines readers, gzip, bounded lines."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

import gandoctor
from gandoctor import LogFormatError, read_run
from gandoctor.readers import READERS, Reader, ReadOptions, _lines, register_reader
from gandoctor.readers.tabular import signal_name

CSV = "step,loss_D,loss_G,D(x),D(G(z)),lr\n0,1.38,0.69,0.5,0.5,0.0002\n10,1.20,0.80,0.6,0.4,0.0002\n20,nan,inf,0.7,0.3,0.0002\n"


def write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- aliases ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "column,name",
    [
        ("loss_D", "loss.d"),
        ("errD", "loss.d"),
        ("Loss D", "loss.d"),
        ("g_loss", "loss.g"),
        ("loss/G", "loss.g"),
        ("D(x)", "d_prob.real"),
        ("D(G(z))", "d_prob.fake"),
        ("grad_norm_d", "grad_norm.d"),
        ("d_loss_step", "loss.d"),  # Lightning's self.log(..., on_step=True, on_epoch=True)
        ("d_loss_epoch", "user.d_loss_epoch"),  # one value per epoch: not the step's loss
        ("train/g_loss_step", "loss.g"),
        ("d_loss/train", "loss.d"),
        ("disc/loss", "loss.d"),
        ("Loss/G/loss", "loss.g"),  # StyleGAN2-ADA / StyleGAN3
        ("Loss/scores/fake", "d_out.fake"),
        ("losses_D", "loss.d"),  # {"losses": {"D": ...}} in a JSON record, flattened
        ("D_loss_total", "loss.d"),
        ("errD_real", "loss.d_real"),  # D's loss in two parts (the DCGAN tutorial, pix2pix)
        ("loss_D_fake", "loss.d_fake"),
        ("loss_disc_real", "loss.d_real"),  # MMGeneration's log
        ("gnorm_D", "grad_norm.d"),
        ("generator_grad_norm", "grad_norm.g"),
        ("D/d_loss", "loss.d"),  # LynnHo's DCGAN-LSGAN-WGAN-GP-DRAGAN: tags grouped under their network
        ("G/g_loss", "loss.g"),
        ("train/D/d_loss", "loss.d"),
        ("G/d_loss", "user.g_d_loss"),  # grouped under the other network: not taken
        ("D/gp", "user.d_gp"),
        ("VGAN_MNIST/D_error", "loss.d"),  # diegoalejogm's Logger: the model's name before the tag
        ("VGAN_MNIST/G_error", "loss.g"),
        ("val/d_loss", "user.val_d_loss"),  # a held-out split's loss is no training loss
        ("learning rate", "user.learning_rate"),
        ("FID@10k", "user.fid_10k"),
        ("???", None),
    ],
)
def test_signal_name_aliases(column, name):
    assert signal_name(column) == name


def test_json_records_of_mean_num_std_are_read_by_their_mean(tmp_path):
    """StyleGAN2-ADA's stats.jsonl: every value a {"num", "mean", "std"} record."""
    lines = [
        json.dumps({"Progress/tick": {"num": 1, "mean": t, "std": 0}, "Loss/D/loss": {"num": 64, "mean": 0.5 + t, "std": 0.1},
                    "Loss/G/loss": {"num": 64, "mean": 2.0, "std": 0.1}, "Loss/scores/real": {"num": 64, "mean": 1.5, "std": 0.2}})
        for t in range(3)
    ]
    data = read_run(write(tmp_path / "stats.jsonl", "\n".join(lines) + "\n"))
    assert data.signals.get("loss.d").values.tolist() == [0.5, 1.5, 2.5]
    assert data.signals.get("d_out.real") is not None and data.signals.get("loss.g") is not None
    assert {"user.loss_d_loss_num", "user.loss_d_loss_std"} <= set(data.signals.names())  # kept, feeding no rule


def test_stylegan_stats_count_steps_in_kimg_as_their_tensorboard_logs_do(tmp_path):
    # One record a tick of 4 kimg: the step is the kimg (StyleGAN's TensorBoard global_step), not the tick.
    lines = [
        json.dumps({"Progress/tick": {"num": 1, "mean": t, "std": 0}, "Progress/kimg": {"num": 1, "mean": 4.0 * t, "std": 0},
                    "Loss/D/loss": {"num": 64, "mean": 0.5, "std": 0.1}, "Loss/G/loss": {"num": 64, "mean": 2.0, "std": 0.1}})
        for t in range(4)
    ]
    data = read_run(write(tmp_path / "stats.jsonl", "\n".join(lines) + "\n"))
    assert data.signals.get("loss.d").steps.tolist() == [0, 4, 8, 12]
    assert "user.progress_tick_mean" in data.signals.names()  # the tick stays a value


def test_stylegan_s_kimg_are_g_iterations_where_its_training_options_give_the_batch(tmp_path):
    # StyleGAN2-ADA's own stats.jsonl (its training loop at lr 0.05 for both, 300 iterations of 16
    # images, a tick every 0.16 kimg: thirty-one records on steps 0..4 read "too short to judge", and
    # `gate` passed a run whose D's loss fell to 1e-5); its training_options.json beside it.
    public = Path(__file__).resolve().parents[1] / "fixtures" / "public" / "stylegan2ada_lr20"
    data = read_run(public / "stats.jsonl.gz")
    steps = data.signals.get("loss.d").steps
    assert (int(steps[0]), int(steps[-1]), len(steps)) == (1, 300, 31) and (np.diff(steps) > 0).all()
    assert any("read as G iterations (1000 / the batch_size 16 of training_options.json" in w for w in data.warnings)
    report = gandoctor.analyze(public / "stats.jsonl.gz")
    assert "discriminator_dominance" in {f.mode for f in report.findings}
    # Loss/r1_penalty says a penalty is in use; Loss/signs/* give D's accuracy at threshold 0.
    assert "gradient_penalty" in report.context.flags and "d_sign.real" in data.signals
    # --step names the tick as StyleGAN logs it (its record holds Progress/tick as {"num", "mean", "std"})
    ticks = read_run(public / "stats.jsonl.gz", options=ReadOptions(step="Progress/tick")).signals.get("loss.d").steps
    assert (int(ticks[0]), int(ticks[-1])) == (0, 30)
    alone = tmp_path / "stats.jsonl.gz"  # without the options: kimg, as the TensorBoard log's steps
    alone.write_bytes((public / "stats.jsonl.gz").read_bytes())
    assert int(read_run(alone).signals.get("loss.d").steps[-1]) == 4


# -- CSV ----------------------------------------------------------------------------------
def test_csv_maps_columns_and_reads_non_finite(tmp_path):
    data = read_run(write(tmp_path / "train.csv", CSV))
    assert data.format == "csv" and data.records == 3 and data.warnings == ()
    assert data.signals.names() == ["d_prob.fake", "d_prob.real", "loss.d", "loss.g", "user.lr"]
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == [0, 10, 20]
    assert d.values[:2].tolist() == [1.38, 1.20] and math.isnan(d.values[2])
    assert d.nonfinite.tolist() == [0, 0, 1]
    assert data.signals.get("loss.g").nonfinite.tolist() == [0, 0, 1]


def test_csv_gz_reads_the_same(tmp_path):
    plain = read_run(write(tmp_path / "train.csv", CSV))
    gz = read_run(write(tmp_path / "train.csv.gz", CSV))
    assert gz.format == "csv" and gz.records == plain.records
    for name in plain.signals.names():
        a, b = plain.signals.get(name), gz.signals.get(name)
        assert a.steps.tolist() == b.steps.tolist()
        assert a.nonfinite.tolist() == b.nonfinite.tolist()
        assert [x for x in a.values if x == x] == [x for x in b.values if x == x]


def test_tsv(tmp_path):
    data = read_run(write(tmp_path / "train.tsv", "iteration\terrD\terrG\n1\t0.5\t2.0\n2\t0.4\t2.1\n"))
    assert data.signals.get("loss.g").steps.tolist() == [1, 2]


def test_csv_without_step_column_counts_rows(tmp_path):
    data = read_run(write(tmp_path / "train.csv", "d_loss,g_loss\n1,2\n3,4\n5,6\n"))
    assert data.signals.get("loss.d").steps.tolist() == [0, 1, 2]


def test_csv_bad_rows_warn_with_line_numbers(tmp_path):
    text = "step,loss_D,loss_G\n0,1.0,2.0\n1,1.0\nx,1.0,2.0\n3,oops,2.0\n\n4,1.0,2.0\n"
    path = write(tmp_path / "train.csv", text)
    data = read_run(path)
    assert data.records == 3  # steps 0, 3 (loss_G only), 4
    assert data.signals.get("loss.d").steps.tolist() == [0, 4]
    assert data.signals.get("loss.g").steps.tolist() == [0, 3, 4]
    assert data.warnings == (
        f"{path}: line 3: expected 3 columns, got 2; row skipped",
        f"{path}: line 4: column 'step': expected a step number, got 'x'; row skipped",
        f"{path}: line 5: column 'loss_D': expected a number, got 'oops'; value skipped",
    )


def test_csv_truncated_last_row_is_skipped_with_warning(tmp_path):
    path = write(tmp_path / "train.csv", "step,loss_D,loss_G\n0,1.0,2.0\n1,1.0,2.0\n2,1.")
    data = read_run(path)
    assert data.records == 2
    assert any("line 4" in w for w in data.warnings)


def test_csv_without_known_columns_is_an_error_listing_names_found_and_expected(tmp_path):
    # Not an empty "healthy" run: nothing a rule could check was read.
    path = write(tmp_path / "train.csv", "step,fid\n0,100\n1,90\n")
    with pytest.raises(LogFormatError) as info:
        read_run(path)
    message = str(info.value)
    assert str(path) in message and "found: 'fid'" in message
    assert "loss.d (e.g. loss_d" in message and "--map" in message


@pytest.mark.parametrize(
    "text,fragment",
    [("", "empty file"), ("step,loss_D\n", "no usable records"), ("step,loss_D\nx,1\n", "no usable records")],
)
def test_csv_without_records_raises(tmp_path, text, fragment):
    path = write(tmp_path / "train.csv", text)
    with pytest.raises(LogFormatError, match=fragment) as info:
        read_run(path)
    assert str(path) in str(info.value)


# -- JSON Lines ----------------------------------------------------------------------------
JSONL = (
    '{"step": 0, "loss": {"d": 1.0, "g": 2.0}, "note": "start"}\n'
    '{"step": 1, "loss_D": 0.9, "loss_G": "nan"}\n'
    '{"global_step": 2, "d_loss": 0.8, "g_loss": "inf", "fid": 30}\n'
)


def test_jsonl_flattens_and_maps(tmp_path):
    data = read_run(write(tmp_path / "metrics.jsonl", JSONL))
    assert data.format == "jsonl" and data.records == 3 and data.warnings == ()
    assert data.signals.names() == ["loss.d", "loss.g", "user.fid"]
    assert data.signals.get("loss.d").values.tolist() == [1.0, 0.9, 0.8]
    assert data.signals.get("loss.g").nonfinite.tolist() == [0, 1, 1]


def test_jsonl_gz_and_ndjson(tmp_path):
    gz = read_run(write(tmp_path / "metrics.jsonl.gz", JSONL))
    nd = read_run(write(tmp_path / "metrics.ndjson", JSONL))
    assert gz.records == nd.records == 3
    assert gz.signals.get("loss.d").values.tolist() == nd.signals.get("loss.d").values.tolist() == [1.0, 0.9, 0.8]


def test_jsonl_damage_is_reported_by_line(tmp_path):
    path = write(tmp_path / "m.jsonl", '{"step": 0, "loss_D": 1}\nnot json\n[1]\n{"step": -4, "loss_D": 1}\n{"step": 5, "loss_D": 2}\n{"step": 6, "los')
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == [0, 5]
    assert data.warnings == (
        f"{path}: line 2: not valid JSON; skipped",
        f"{path}: line 3: expected a JSON object; skipped",
        f"{path}: line 4: key 'step': expected a step number, got -4; skipped",
        f"{path}: line 6: incomplete last record; skipped",
    )


def test_jsonl_without_step_counts_records(tmp_path):
    data = read_run(write(tmp_path / "m.jsonl", '{"loss_D": 1}\n{"loss_D": 2}\n'))
    assert data.signals.get("loss.d").steps.tolist() == [0, 1]


def test_jsonl_without_records_raises(tmp_path):
    with pytest.raises(LogFormatError, match="no usable records"):
        read_run(write(tmp_path / "m.jsonl", '{"note": "hi"}\n'))


# -- dispatch ----------------------------------------------------------------------------
def test_missing_path_raises(tmp_path):
    with pytest.raises(LogFormatError, match="no such file or directory"):
        read_run(tmp_path / "nope.csv")


def test_unknown_file_kind_raises_listing_formats(tmp_path):
    path = write(tmp_path / "notes.txt", "hello\n")
    with pytest.raises(LogFormatError) as info:
        read_run(path)
    message = str(info.value)
    assert str(path) in message and "runlog" in message and "csv" in message and "jsonl" in message


@pytest.mark.parametrize(
    "name,text",
    [
        ("semicolons.csv", "step;loss_D;loss_G\n0;0.5;1.0\n1;0.4;1.1\n"),  # a European spreadsheet's separator
        ("pipes.csv", "step|loss_D|loss_G\n0|0.5|1.0\n1|0.4|1.1\n"),
        ("train_log.txt", "step  d_loss  g_loss\n0  0.5  1.0\n1  0.4  1.1\n"),  # f.write(f"{step} {d} {g}")
        ("losses.dat", "iter\terrD\terrG\n0\t0.5\t1.0\n1\t0.4\t1.1\n"),  # tabs in a file not named .tsv
    ],
)
def test_tables_separated_otherwise_than_by_commas(tmp_path, name, text):
    data = read_run(write(tmp_path / name, text))
    assert data.format == "csv" and data.records == 2
    assert data.signals.get("loss.d").values.tolist() == [0.5, 0.4]
    assert data.signals.get("loss.g").steps.tolist() == [0, 1]


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("step,loss_D\n10,0.5\n20,0.4\n", encoding="utf-8-sig")  # Excel's "CSV UTF-8"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == [10, 20]


def test_a_text_file_of_key_value_lines_is_still_a_console_log(tmp_path):
    data = read_run(write(tmp_path / "train.log", "step=0 loss_D=0.5 loss_G=1.0\nstep=1 loss_D=0.4 loss_G=1.1\n"))
    assert data.format == "console" and data.records == 2


def test_forced_format(tmp_path):
    path = write(tmp_path / "metrics.txt", "step,loss_D\n0,1\n")
    assert read_run(path, format="csv").records == 1
    with pytest.raises(LogFormatError, match="unknown log format 'xml'"):
        read_run(path, format="xml")


def test_registry_order_and_duplicates():
    # W&B before csv/jsonl: it claims only exports with a _step column; console last: it sniffs.
    assert list(READERS) == ["runlog", "tensorboard", "wandb", "csv", "jsonl", "metricfiles", "console"]
    from gandoctor.cli import LOG_FORMATS

    assert list(LOG_FORMATS) == ["auto", *READERS]  # --format offers each
    with pytest.raises(ValueError, match="already registered"):
        register_reader(Reader("csv", lambda p: False, lambda p, c: None, "dup"))  # type: ignore[arg-type,return-value]


def test_not_gzip_despite_name_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "train.csv.gz"
    path.write_bytes(b"step,loss_D\n0,1\n")
    with pytest.raises(LogFormatError):
        read_run(path)


# -- bounded lines ---------------------------------------------------------------------------
def test_over_long_line_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(_lines, "MAX_LINE_BYTES", 64)
    long_row = "1," + "9" * 200 + "\n"
    path = write(tmp_path / "train.csv", "step,loss_D\n0,1\n" + long_row + "2,3\n")
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == [0, 2]
    assert any("line 3: longer than 64 bytes; skipped" in w for w in data.warnings)


def test_iter_lines_marks_last_line_without_newline(tmp_path):
    path = write(tmp_path / "x.txt", "a\nb\nc")
    warnings: list[str] = []
    with _lines.open_text(path) as fh:
        assert list(_lines.iter_lines(fh, warnings, path)) == [(1, "a", True), (2, "b", True), (3, "c", False)]
    assert warnings == []


def test_progress_is_reported_while_reading_a_large_log(tmp_path):
    from gandoctor.readers import read_run
    from gandoctor.runlog import RunLogWriter

    writer = RunLogWriter(tmp_path, {"flags": [], "values": {}}, 4096)
    for step in range(50_000):
        writer.write_step(step, {"loss.d": 0.5})
    writer.close()
    calls: list[tuple[int, int | None]] = []
    data = read_run(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert data.records == 50_000
    assert len(calls) >= 2
    size = (tmp_path / "gandoctor.jsonl").stat().st_size
    assert all(total == size for _, total in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1][0] == size


# -- steps from epochs, --step, steps going back (issue 10) ------------------------------------
def _epoch_csv(path: Path, epochs: int, per_epoch: int, every: int = 1) -> Path:
    import csv

    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", "iter", "errD", "errG"])
        for e in range(epochs):
            for i in range(0, per_epoch, every):
                writer.writerow([e, i, 0.5, 2.0 + e])
    return path


def test_epoch_and_iteration_within_epoch_become_a_global_step(tmp_path):
    # The case: iter restarts every epoch; it was read as 28 steps instead of 2,001.
    data = read_run(_epoch_csv(tmp_path / "log.csv", epochs=23, per_epoch=87))
    steps = data.signals.get("loss.d").steps.tolist()
    assert steps == list(range(23 * 87)) and data.records == 2001
    assert data.warnings == ()
    assert "user.epoch" not in data.signals.names() and "user.iter" not in data.signals.names()


def test_logging_every_n_iterations_keeps_the_epoch_length(tmp_path):
    data = read_run(_epoch_csv(tmp_path / "log.csv", epochs=3, per_epoch=1000, every=50))
    steps = data.signals.get("loss.d").steps.tolist()
    assert steps == [e * 1000 + i for e in range(3) for i in range(0, 1000, 50)]


def test_epoch_with_a_global_iteration_counter_is_taken_as_is(tmp_path):
    path = write(tmp_path / "log.csv", "epoch,iteration,loss_D\n0,0,1\n0,5,1\n1,10,1\n1,15,1\n")
    assert read_run(path).signals.get("loss.d").steps.tolist() == [0, 5, 10, 15]


def test_step_option_overrides_detection_and_names_missing_columns(tmp_path):
    path = write(tmp_path / "log.csv", "step,batches_seen,loss_D\n0,0,1\n0,64,1\n1,128,1\n")
    assert read_run(path, options=ReadOptions(step="batches_seen")).signals.get("loss.d").steps.tolist() == [0, 64, 128]
    with pytest.raises(LogFormatError, match="--step 'nope': no such column; columns: 'step', 'batches_seen', 'loss_D'"):
        read_run(path, options=ReadOptions(step="nope"))


def test_a_step_going_back_is_never_silently_history(tmp_path):
    path = write(tmp_path / "log.csv", "step,loss_D\n0,1\n10,2\n20,3\n0,4\n10,5\n")
    data = read_run(path)
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == [0, 10, 20, 30, 40] and d.values.tolist() == [1, 2, 3, 4, 5]
    assert data.warnings == (
        (
            f"{path}: line 5: the step goes back from 20 to 0; not taken as history: the rows from here on are continued "
            "in row order (use --step to name the step column)"
        ),
    )


def test_map_option_reads_a_signal_from_any_column(tmp_path):
    path = write(tmp_path / "log.csv", "step,critic,gen\n0,1.5,0.5\n1,1.4,0.6\n")
    with pytest.raises(LogFormatError, match=r"found: 'critic', 'gen'"):
        read_run(path)
    data = read_run(path, options=ReadOptions(mapping={"loss.d": "critic", "loss.g": "Gen"}))
    assert dict(data.mapped) == {"loss.d": "critic", "loss.g": "gen"}
    assert data.signals.get("loss.g").values.tolist() == [0.5, 0.6]


def test_parse_mapping_and_tile_reject_bad_input():
    from gandoctor.readers import parse_mapping, parse_tile

    assert parse_mapping(["loss.d=errD", "img.diversity=fake"]) == {"loss.d": "errD", "img.diversity": "fake"}
    with pytest.raises(LogFormatError, match="expected SIGNAL=NAME"):
        parse_mapping(["loss.d"])
    with pytest.raises(LogFormatError, match="unknown signal 'loss.x'"):
        parse_mapping(["loss.x=errD"])
    assert parse_tile("64x32") == (64, 32)
    with pytest.raises(LogFormatError, match="HEIGHTxWIDTH"):
        parse_tile("64")


def test_gandoctors_own_log_maps_nothing(tmp_path):
    from gandoctor.runlog import RunLogWriter

    writer = RunLogWriter(tmp_path, {"flags": [], "values": {}}, 64)
    writer.write_step(0, {"loss.d": 0.5, "user.x": 1.0})
    writer.close()
    assert dict(read_run(tmp_path).mapped) == {}


# -- nothing usable is an error, never an empty healthy run ---------------------------------
def test_binary_file_named_csv_is_an_error(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(bytes(range(256)) * 50)
    with pytest.raises(LogFormatError):
        read_run(path)


def test_truncated_jsonl_gz_without_a_complete_record_is_an_error(tmp_path):
    path = tmp_path / "m.jsonl.gz"
    blob = gzip.compress(b'{"step": 0, "loss_D": 1.0, "loss_G": 2.0}\n' * 3)
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(LogFormatError):
        read_run(path)


def test_csv_with_missing_and_non_numeric_cells(tmp_path):
    path = write(tmp_path / "t.csv", "step,loss_D,loss_G\n0,1.0,\n1,,2.0\n2,abc,2.1\n3,inf,-inf\n")
    data = read_run(path)
    assert data.signals.get("loss.d").steps.tolist() == [0, 3]
    assert data.signals.get("loss.g").steps.tolist() == [1, 2, 3]
    assert data.signals.get("loss.g").nonfinite.tolist() == [0, 0, 1]
    assert data.warnings == (f"{path}: line 4: column 'loss_D': expected a number, got 'abc'; value skipped",)


def test_headerless_csv_is_an_error(tmp_path):
    with pytest.raises(LogFormatError, match="line 1: expected a header row"):
        read_run(write(tmp_path / "t.csv", "0,1.0,2.0\n1,1.0,2.0\n"))


def test_jsonl_epoch_and_iter_keys(tmp_path):
    lines = "".join(f'{{"epoch": {e}, "iter": {i}, "lossD": 1.0}}\n' for e in range(3) for i in range(4))
    data = read_run(write(tmp_path / "m.jsonl", lines))
    assert data.signals.get("loss.d").steps.tolist() == list(range(12))


def test_alias_table_lives_in_signals_and_points_at_documented_signals():
    from gandoctor.readers.tabular import ALIASES as reexported
    from gandoctor.signals import ALIASES, SIGNALS, alias_for

    assert reexported is ALIASES
    assert set(ALIASES.values()) <= set(SIGNALS)
    for name, signal in [("loss/D", "loss.d"), ("Loss_D", "loss.d"), ("errD", "loss.d"), ("lossD", "loss.d"), ("d_loss", "loss.d"),
                         ("D(x)", "d_prob.real"), ("D_x", "d_prob.real"), ("d_real", "d_prob.real"), ("D(G(z))", "d_prob.fake"),
                         ("grad_norm/D", "grad_norm.d"), ("train/loss_G", "loss.g"), ("run-3 - train/errG", "loss.g"),
                         ("loss/gen", "loss.g"), ("loss/dis", "loss.d"), ("dis/loss", "loss.d"),
                         ("crit_loss", "loss.d"), ("gen_loss", "loss.g")]:  # fastai's GANLearner's LossMetrics  # 'loss/dis' was a user signal beside 'loss/gen'
        assert alias_for(name) == signal, name
    assert alias_for("lr") is None


def test_probability_columns_outside_0_1_are_read_as_raw_outputs(tmp_path):
    """A critic's d_real/d_fake (scores about 12 and -3) are no probabilities: kept as d_out.*,
    with a warning naming the column, so no rule reads D(x) - D(G(z)) as a probability gap."""
    path = tmp_path / "critic.csv"
    rows = ["step,loss_D,loss_G,d_real,d_fake"] + [f"{i},{-15 + 0.01 * i},{3.0},{12 + 0.01 * i},{-3.0}" for i in range(50)]
    path.write_text("\n".join(rows) + "\n")
    data = read_run(path)
    assert "d_out.real" in data.signals and "d_out.fake" in data.signals
    assert "d_prob.real" not in data.signals and "d_prob.fake" not in data.signals
    assert any("'d_real' read as D's raw output (d_out.real)" in w and "mostly outside [0, 1]" in w for w in data.warnings)
    assert data.mapped["d_out.real"] == "d_real"
    probs = tmp_path / "probs.csv"
    # Least squares towards 1/0 overshoots [0, 1] a little, and a blow-up leaves a few wild values: still probabilities.
    probs.write_text("step,loss_D,D_x,D_G_z\n" + "".join(f"{i},1.2,{1.00006 if i % 2 else 6.9 if i == 2 else 0.6},-0.003\n" for i in range(50)))
    kept = read_run(probs)
    assert "d_prob.real" in kept.signals and not any("outside [0, 1]" in w for w in kept.warnings)
    # least squares towards +/-1: D(x) near 1 stays in range, D(G(z)) near -1 does not; both are raw
    pm1 = tmp_path / "pm1.csv"
    pm1.write_text("step,loss_D,D_x,D_G_z\n" + "".join(f"{i},0.5,0.9,-0.8\n" for i in range(50)))
    both = read_run(pm1)
    assert {"d_out.real", "d_out.fake"} <= set(both.signals.names()) and "d_prob.real" not in both.signals


def test_d_loss_logged_in_two_parts_is_read_as_their_sum(tmp_path):
    # errD = errD_real + errD_fake, as the PyTorch DCGAN tutorial computes it, logged in parts only.
    rows = "\n".join(f"{s},{0.3 + 0.01 * s},{0.4},{2.0}" for s in range(50))
    path = tmp_path / "parts.csv"
    path.write_text("step,errD_real,errD_fake,errG\n" + rows + "\n", encoding="utf-8")
    data = read_run(path)
    d = data.signals.get("loss.d")
    assert np.allclose(d.values, [0.7 + 0.01 * s for s in range(50)])
    assert data.mapped["loss.d"] == "errD_real + errD_fake"
    # Where the log has the total too, the total is read and the parts are left as they are.
    path.write_text("step,errD_real,errD_fake,errD,errG\n" + "\n".join(f"{s},0.3,0.4,9.0,2.0" for s in range(50)) + "\n", encoding="utf-8")
    total = read_run(path)
    assert np.allclose(total.signals.get("loss.d").values, 9.0) and total.mapped["loss.d"] == "errD"
    # One part alone is no D loss.
    path.write_text("step,errD_real,errG\n" + "\n".join(f"{s},0.3,2.0" for s in range(50)) + "\n", encoding="utf-8")
    assert "loss.d" not in read_run(path).signals


def test_a_pix2pix_history_table_reads_d_real_and_d_fake_as_losses(tmp_path):
    # pytorch-CycleGAN-and-pix2pix logged to W&B and exported: D_real / D_fake are D's loss parts
    # there, not D's outputs (which the alias table would take them for).
    path = tmp_path / "history.csv"
    path.write_text("_step,G_GAN,G_L1,D_real,D_fake\n" + "".join(f"{s},2.0,20.0,0.3,0.4\n" for s in range(40)), encoding="utf-8")
    data = read_run(path)
    assert "d_prob.real" not in data.signals
    assert data.mapped["loss.g"] == "G_GAN" and data.mapped["loss.d"] == "D_real + D_fake"
    assert np.allclose(data.signals.get("loss.d").values, 0.7)
    # The user's --map reads them otherwise.
    mapped = read_run(path, options=ReadOptions(mapping={"d_prob.real": "D_real", "loss.g": "G_GAN"}))
    assert "loss.d" not in mapped.signals and mapped.mapped["d_prob.real"] == "D_real"
    # Naming one of the script's columns for another signal is enough to read none in its sense.
    own = read_run(path, options=ReadOptions(mapping={"d_prob.real": "D_real"}))
    assert own.mapped["d_prob.real"] == "D_real" and "loss.d_real" not in own.signals


def test_biggan_metalog_counts_steps_in_itr_and_sums_d_s_loss_parts(tmp_path):
    path = tmp_path / "BigGAN_log.jsonl"
    path.write_text("".join(json.dumps({"itr": s, "G_loss": 1.0, "D_loss_real": 0.25, "D_loss_fake": 0.5}) + "\n" for s in range(0, 500, 50)), encoding="utf-8")
    data = read_run(path)
    d = data.signals.get("loss.d")
    assert d.steps.tolist() == list(range(0, 500, 50)) and np.allclose(d.values, 0.75)
