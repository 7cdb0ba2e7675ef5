"""The reader of folders of one text file per metric (BigGAN-PyTorch's ``utils.MyLogger``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from gandoctor.diagnose import analyze
from gandoctor.errors import LogFormatError
from gandoctor.readers import read_run

BIGGAN = Path(__file__).resolve().parent.parent / "fixtures" / "public" / "biggan_pytorch_lr5"


def _lines(path: Path) -> list[tuple[int, float]]:
    return [(int(a), float(b)) for a, b in (line.split(":") for line in path.read_text().splitlines())]


def test_biggan_s_logs_folder_is_read_with_d_s_loss_summed_from_its_parts():
    data = read_run(BIGGAN)
    assert data.format == "metricfiles" and data.records == 299
    real, fake, g = (_lines(BIGGAN / f"{n}.log") for n in ("D_loss_real", "D_loss_fake", "G_loss"))
    loss_d = data.signals.get("loss.d")
    assert loss_d.steps.tolist() == [s for s, _ in real]
    assert np.allclose(loss_d.values, [a + b for (_, a), (_, b) in zip(real, fake)])
    assert data.signals.get("loss.g").values.tolist() == [v for _, v in g]
    assert data.mapped["loss.g"] == "G_loss" and data.mapped["loss.d"] == "D_loss_real + D_loss_fake"
    assert data.signals.get("user.d_linear_sv0").steps.tolist()[:3] == [10, 20, 30]  # every tenth, beside the losses


def test_biggan_at_learning_rate_5_reads_as_the_dead_d_the_oracle_saw():
    # Both rates 5: D died at once (the digit oracle: G frozen from iteration 50, not digit-like);
    # its hinge losses sit at 1.386 / 2 x 0.693 from then on.
    report = analyze(BIGGAN)
    assert "vanishing_gradients" in {f.mode for f in report.findings}


def test_biggan_at_d_s_rate_x10_reads_as_the_dead_d_not_as_g_dominance():
    # D's rate x10: D died (the oracle: G frozen on one blob from iteration 50); its hinge loss
    # printed 2.000e+00 from iteration 132 on. Read as D at chance, G dominance was called too.
    report = analyze(BIGGAN.parent / "biggan_pytorch_dlr10")
    assert "hinge_loss" in report.context.flags
    assert {f.mode for f in report.findings} == {"vanishing_gradients"}


def test_a_truncated_line_and_a_resumed_file_keep_what_is_complete(tmp_path):
    run = tmp_path / "bg"
    shutil.copytree(BIGGAN, run)
    with open(run / "G_loss.log", "a") as fh:
        fh.write("300: 1.3")  # cut off mid-write: no newline
    with open(run / "D_loss_real.log", "a") as fh:
        fh.write("5: 0.5\n6: 0.7\n")  # a resumed run appending from an earlier checkpoint
    data = read_run(run)
    assert data.signals.get("loss.g").steps[-1] == 299 and data.signals.get("loss.d").steps[-1] == 299
    said = " ".join(data.warnings)
    assert "G_loss.log: line 300: incomplete last line" in said and "D_loss_real.log: line 300: the iteration goes back from 299 to 5" in said


def test_a_line_of_another_shape_is_named_and_skipped(tmp_path):
    run = tmp_path / "bg"
    run.mkdir()
    (run / "G_loss.log").write_text("1: 0.7\n2: oops\n3: 0.6\n")
    (run / "D_loss.log").write_text("1: 1.3\n2: 1.2\n3: 1.1\n")
    data = read_run(run)
    assert data.signals.get("loss.g").steps.tolist() == [1, 3]
    assert any("G_loss.log: line 2: expected '<iteration>: <value>', got '2: oops'" in w for w in data.warnings)


def test_a_folder_of_other_numbers_is_not_taken_for_one(tmp_path):
    (tmp_path / "accuracy.log").write_text("1: 0.5\n2: 0.6\n")
    with pytest.raises(LogFormatError, match="not a log gandoctor can read"):
        read_run(tmp_path)
