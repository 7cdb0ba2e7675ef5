"""TensorBoardAlerts: findings replayed from a real recorded run are written with a real
SummaryWriter and read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("tensorboard", reason="writing to TensorBoard needs the tensorboard package: pip install 'gandoctor[tensorboard]'")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from gandoctor.integrations import IntegrationError
from gandoctor.integrations.tensorboard import TensorBoardAlerts
from gandoctor.report import Report

from ._checks import feed, replay


@pytest.fixture(scope="module")
def checks():
    return replay()


def read_back(log_dir):
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_findings_and_health_land_in_the_users_writer(tmp_path, checks):
    writer = SummaryWriter(log_dir=str(tmp_path))
    writer.add_scalar("loss/d", 0.7, 0)  # the user's own logging goes on alongside
    sink = TensorBoardAlerts(writer)
    feed(sink, checks)
    sink.close()  # a writer passed in is the caller's: still open
    writer.add_scalar("loss/d", 0.6, 1)
    writer.close()

    acc = read_back(tmp_path)
    texts = acc.Tensors("gandoctor/findings/text_summary")
    found = [(c.step, f) for c in checks for f in c.new]
    assert [t.step for t in texts] == [step for step, _ in found] and len(found) >= 3
    for event, (_, f) in zip(texts, found):
        text = event.tensor_proto.string_val[0].decode()
        assert f.mode in text and f.rule in text and f"Onset step **{f.onset_step}**" in text
        assert f"confidence {f.confidence:.2f}" in text
        assert f"({f.details[0].signal}, {f.details[0].window})" in text  # the evidence table
        top = f.remedies[0]
        assert top.title in text and top.source in text  # remedies with their sources

    assert [e.value for e in acc.Scalars("loss/d")] == pytest.approx([0.7, 0.6])
    health = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"] if "/health/" in tag}
    # exploding_gradients is judged from the first check and stays clear
    assert health["gandoctor/health/exploding_gradients"] == [(c.step, 1.0) for c in checks]
    # D dominance: not checkable before step 300 (no point), failing from the check that found it
    assert health["gandoctor/health/discriminator_dominance"] == [(c.step, 0.0) for c in checks if c.step >= 300]
    # non_convergence needs a longer run: its first point is at the first check that could judge it
    first = min(c.step for c in checks if any(s.mode == "non_convergence" and s.state.value == "clear" for s in c.report.mode_status))
    assert health["gandoctor/health/non_convergence"][0] == (first, 1.0) and first > checks[0].step
    conf = acc.Scalars("gandoctor/confidence/mode_collapse")
    assert conf[0].step == 300 and 0 < conf[0].value <= 1


def test_a_log_dir_gets_its_own_writer_closed_by_the_sink(tmp_path, checks):
    sink = TensorBoardAlerts(tmp_path / "tb", prefix="doctor/")
    feed(sink, checks[:4])
    sink.close()
    acc = read_back(tmp_path / "tb")
    assert "doctor/findings/text_summary" in acc.Tags()["tensors"]
    assert len(acc.Scalars("doctor/health/mode_collapse")) == 2  # checks at 300 and 400


def test_ordinary_oddities_do_not_raise(tmp_path, checks):
    import dataclasses

    writer = SummaryWriter(log_dir=str(tmp_path))
    sink = TensorBoardAlerts(writer)
    odd = dataclasses.replace(checks[2].new[0], confidence=math.nan, remedies=())
    sink.on_finding(odd, 300)
    sink.on_check(Report(findings=(odd,)), 300)  # no per-mode status: the findings' modes only
    sink.on_check(Report(findings=()), 301)  # nothing judged: nothing written
    writer.close()
    acc = read_back(tmp_path)
    assert [e.value for e in acc.Scalars(f"gandoctor/health/{odd.mode}")] == [0.0]
    assert f"gandoctor/confidence/{odd.mode}" not in acc.Tags()["scalars"]
    assert "confidence nan" in acc.Tensors("gandoctor/findings/text_summary")[0].tensor_proto.string_val[0].decode()


def test_something_that_is_not_a_writer_is_refused():
    with pytest.raises(IntegrationError, match="expected a SummaryWriter or a log directory, got int"):
        TensorBoardAlerts(3)
