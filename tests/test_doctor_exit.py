"""A training script that crashes, or stops right after its first NaN without closing the doctor,
still leaves a run log that says how the run ended: the values buffered since the last flush are
written at interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gandoctor import LogFormatError, read_run
from gandoctor.cli import main
from gandoctor.runlog import Ending

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    import gandoctor
    torch.manual_seed(0)
    G, D = nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 1))
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.01), torch.optim.SGD(D.parameters(), lr=0.01)
    doctor = gandoctor.Doctor(G, D, opt_g, opt_d, log_dir=sys.argv[1])   # never closed
    for step in range(1000):
        real, fake = torch.randn(16, 2), G(torch.randn(16, 2))
        d_loss = nn.functional.softplus(-D(real)).mean() + nn.functional.softplus(D(fake.detach())).mean()
        if step >= 437:
            d_loss = d_loss * float("nan")    # the blow-up
        opt_d.zero_grad(); d_loss.backward(); opt_d.step()
        g_loss = nn.functional.softplus(-D(G(torch.randn(16, 2)))).mean()
        opt_g.zero_grad(); g_loss.backward(); opt_g.step()
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)
        if not torch.isfinite(d_loss):
            raise SystemExit(sys.argv[2] if len(sys.argv) > 2 else "loss is NaN")   # as many scripts do
    """
)


def test_run_log_of_a_script_that_dies_at_its_first_nan_shows_the_nan(tmp_path, capsys):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(run)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "loss is NaN" in proc.stderr
    data = read_run(run)
    loss = data.signals.get("loss.d")
    assert loss is not None and int(loss.steps[-1]) == 437 and loss.nonfinite[-1] == 1
    assert main(["gate", str(run), "--fail-on", "exploding_gradients"]) == 1
    assert "exploding_gradients (GD501, onset step 437" in capsys.readouterr().out


def test_a_script_that_stops_on_an_uncaught_exception_says_so_in_its_run_log(tmp_path, capsys):
    # PyTorch-GAN's aae.py at lr 5 died in its second batch (BCELoss refused a NaN); its run log
    # read 'HEALTHY' over steps 0..0 as if the run had finished there.
    crash = SCRIPT.replace('raise SystemExit(sys.argv[2] if len(sys.argv) > 2 else "loss is NaN")', 'pass').replace(
        "doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)",
        "doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)\n    if step == 3:\n        raise RuntimeError('all elements of input should be between 0 and 1')")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", crash, str(run)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "all elements of input" in proc.stderr
    ending = read_run(run).ending
    assert ending is not None and ending.how is Ending.STOPPED and ending.step == 3
    assert "the script stopped on an uncaught RuntimeError (all elements of input" in ending.message() and "after step 3" in ending.message()
    main(["analyze", str(run)])
    out = capsys.readouterr().out
    assert "stopped on an uncaught RuntimeError" in " ".join(out.split("mode ")[0].split())  # in the verdict's panel
    # A script that stops before its first doctor.step (infoGAN's G refusing its inputs): its log
    # holds no step, and the error reading it says why.
    early = crash.replace("    real, fake = torch.randn(16, 2), G(torch.randn(16, 2))",
                          "    raise ValueError('expected input of size 74')")
    proc = subprocess.run([sys.executable, "-c", early, str(tmp_path / "early")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    with pytest.raises(LogFormatError, match=r"no step records: the script stopped on an uncaught ValueError \(expected input of size 74\) before its first step"):
        read_run(tmp_path / "early")
    # A message of hundreds of lines (lightweight-gan's load_state_dict error: 340) is its first line, cut.
    long = crash.replace("raise RuntimeError('all elements of input should be between 0 and 1')",
                         "raise RuntimeError('Error(s) in loading state_dict: ' + 'x' * 300 + '\\n' + 'Missing key\\n' * 340)")
    subprocess.run([sys.executable, "-c", long, str(tmp_path / "long")], capture_output=True, text=True, timeout=300)
    said = read_run(tmp_path / "long").ending.message()
    assert "Error(s) in loading state_dict: xxx" in said and "Missing key" not in said and len(said) < 400
    # A script that ends normally without closing the doctor says nothing of the kind.
    ended = SCRIPT.replace("range(1000)", "range(20)")
    proc = subprocess.run([sys.executable, "-c", ended, str(tmp_path / "ok")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and read_run(tmp_path / "ok").ending is None
    # Nor does one whose session had printed an exception before the doctor was made (a notebook's
    # earlier cell leaves it as sys.last_value).
    stale = ended.replace("torch.manual_seed(0)", "torch.manual_seed(0); sys.last_value = ValueError('an earlier cell')")
    proc = subprocess.run([sys.executable, "-c", stale, str(tmp_path / "stale")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and read_run(tmp_path / "stale").ending is None


def test_a_killed_process_s_run_log_says_it_ends_without_the_doctor_closing_it(tmp_path, capsys):
    # SIGKILL (out of memory, a job's time limit) leaves no exception and runs no atexit: the log
    # read as a finished run. The header promises a closing line; a log without it says where it stood.
    killed = SCRIPT.replace(
        "doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)",
        "doctor.step(d_loss=d_loss, g_loss=g_loss, real=real, fake=fake)\n"
        "    if step == 300:\n        import os, signal; doctor._writer.flush(); os.kill(os.getpid(), signal.SIGKILL)",
    )
    proc = subprocess.run([sys.executable, "-c", killed, str(tmp_path / "killed")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9
    ending = read_run(tmp_path / "killed").ending
    assert ending is not None and ending.how is Ending.CUT_SHORT and ending.step == 299
    assert main(["gate", str(tmp_path / "killed"), "--fail-on", "exploding_gradients"]) == 0  # said, not failed on
    assert "the log ends at step 299 without the doctor closing it" in capsys.readouterr().out
    # A run that ends normally, with or without close() (the interpreter's exit closes it), says nothing.
    ended = SCRIPT.replace("range(1000)", "range(20)")
    proc = subprocess.run([sys.executable, "-c", ended, str(tmp_path / "ok")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and read_run(tmp_path / "ok").ending is None


def test_a_dropped_doctor_is_closed_at_the_next_safe_point_not_inside_the_garbage_collector(tmp_path):
    # close() from __del__ ran the last sample statistics, a flush and the live check wherever an
    # allocation set off the collector: inside np.errstate (a segfault) and the AST builder
    # ("AST constructor recursion depth mismatch") in this test suite.
    import gc

    import torch
    from torch import nn

    import gandoctor
    from gandoctor.probes.doctor import _DROPPED, close_dropped

    def dropped_doctor() -> None:
        G, D = nn.Linear(2, 2), nn.Linear(2, 1)
        doctor = gandoctor.Doctor(G, D, log_dir=tmp_path / "dropped")
        doctor.self_ref = doctor  # a cycle: only the collector frees it
        for _ in range(30):
            doctor.step(d_loss=torch.rand(()), g_loss=torch.rand(()))

    gc.collect()
    close_dropped()  # other tests' doctors
    dropped_doctor()
    gc.collect()
    assert len(_DROPPED) == 1 and not _DROPPED[0]._closed  # not closed by the collector
    with gandoctor.Doctor(nn.Linear(2, 2), nn.Linear(2, 1)):  # the next doctor made closes it
        assert not _DROPPED
    loss = read_run(tmp_path / "dropped").signals.get("loss.d")
    assert loss is not None and int(loss.steps[-1]) == 29  # the 5 steps after the last flush are there
