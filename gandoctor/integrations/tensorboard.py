"""Write the doctor's findings back into the user's TensorBoard (``pip install 'gandoctor[tensorboard]'``).

::

    writer = SummaryWriter("runs/exp1")            # the writer the training already uses
    sink = TensorBoardAlerts(writer)               # or TensorBoardAlerts("runs/exp1"): it makes its own

Each new finding becomes a Markdown text entry under ``<prefix>/findings`` at the training step
it was found (mode, rule, onset, confidence, evidence, the top remedies with their sources).
After every live check each mode gets a point on ``<prefix>/health/<mode>``: 1 = clear, 0 =
failing, 0.5 = failed earlier but its rule no longer holds; a mode that could not be checked
gets no point. Failing modes also get ``<prefix>/confidence/<mode>``.
"""

from __future__ import annotations

import os
from typing import Any

from ..findings import Finding
from ..report import Report
from . import _health
from ._common import IntegrationError


def _summary_writer(log_dir: str | os.PathLike[str]) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch's writer needs the tensorboard package
        raise ImportError("writing to TensorBoard needs the tensorboard package: pip install 'gandoctor[tensorboard]'") from exc
    return SummaryWriter(log_dir=os.fspath(log_dir))


class TensorBoardAlerts:
    """An alert sink that writes findings and per-mode health into a TensorBoard run.

    ``writer_or_log_dir``: a ``torch.utils.tensorboard.SummaryWriter`` (or anything with its
    ``add_text`` and ``add_scalar``), or a log directory, for which a writer is created (and
    closed by :meth:`close`). ``prefix``: the tag prefix of everything written."""

    def __init__(self, writer_or_log_dir: Any, prefix: str = "gandoctor", max_remedies: int = 3) -> None:
        if isinstance(writer_or_log_dir, (str, os.PathLike)):
            self.writer = _summary_writer(writer_or_log_dir)
            self._owned = True
        elif callable(getattr(writer_or_log_dir, "add_text", None)) and callable(getattr(writer_or_log_dir, "add_scalar", None)):
            self.writer = writer_or_log_dir
            self._owned = False
        else:
            raise IntegrationError(
                f"TensorBoardAlerts(writer_or_log_dir=...): expected a SummaryWriter or a log directory, got {type(writer_or_log_dir).__name__}"
            )
        self.prefix = prefix.rstrip("/")
        self.max_remedies = max_remedies

    def on_finding(self, finding: Finding, step: int) -> None:
        """Write the finding as Markdown text at ``step``; flushed at once, so it shows up now."""
        text = f"**{_health.title(finding)}**\n\n" + _health.markdown(finding, self.max_remedies)
        self.writer.add_text(f"{self.prefix}/findings", text, global_step=int(step))
        flush = getattr(self.writer, "flush", None)
        if callable(flush):
            flush()

    def on_check(self, report: Report, step: int) -> None:
        """Write each judged mode's health (and a failing mode's confidence) at ``step``."""
        step = int(step)
        for mode, value in _health.health(report).items():
            self.writer.add_scalar(f"{self.prefix}/health/{mode}", value, global_step=step)
        for mode, value in _health.confidences(report).items():
            self.writer.add_scalar(f"{self.prefix}/confidence/{mode}", value, global_step=step)

    def close(self) -> None:
        """Close the writer if this sink created it; a writer passed in stays the caller's."""
        if self._owned:
            self.writer.close()
