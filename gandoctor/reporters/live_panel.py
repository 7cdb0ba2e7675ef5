"""A rich panel of each failure mode's status that redraws in place after every live check.

``Doctor(..., live_panel=True)`` makes one (and closes it with the doctor), or pass your own
``LivePanel(console=...)`` in ``alerts=[...]``: it is an :class:`gandoctor.live.AlertSink`.
Opt-in, like everything that draws: meant for a terminal, where it stays at the bottom while the
training prints above it (rich's ``Live``, without a refresh thread: it redraws only when a live
check ran). Off a terminal (a file, a notebook's captured output) it prints its last state once
when closed. Close it (``panel.close()``, ``doctor.close()`` or ``with``) to give the terminal back.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..findings import Finding, ModeState, ModeStatus
from ..report import Report

_STYLE = {ModeState.FAILING: "bold red", ModeState.CLEAR: "green", ModeState.NOT_CHECKED: "yellow"}
_LABEL = {ModeState.FAILING: "failing", ModeState.CLEAR: "clear", ModeState.NOT_CHECKED: "not checked"}


def panel(report: Report, step: int, new: tuple[Finding, ...] = ()) -> Panel:
    """The panel for one live check: one row per mode (status and why), then the newest findings."""
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    findings = {f.mode: f for f in report.findings}
    for status in report.mode_status:
        table.add_row(status.mode, Text(_LABEL[status.state], style=_STYLE[status.state]), _why(status, findings.get(status.mode)))
    parts: list[Any] = [table]
    for finding in new:
        remedy = finding.remedies[0].title if finding.remedies else "none ranked"
        parts.append(Text(f"new: {finding.mode} ({finding.rule}) from step {finding.onset_step}; top remedy: {remedy}", style="red"))
    verdict = "UNHEALTHY" if report.findings else ("healthy so far" if report.verdict == "healthy" else "nothing checked yet")
    return Panel(Group(*parts), title=f"gandoctor · live · step {step}", subtitle=verdict, title_align="left")


def _why(status: ModeStatus, finding: Finding | None) -> str:
    if finding is not None:
        return f"{finding.rule} {finding.rule_name} from step {finding.onset_step}"
    if status.state is ModeState.CLEAR:
        return f"{', '.join(status.rules_checked)} checked"
    return status.describe().removeprefix("not checked").lstrip(": ") or "no rule could be checked yet"


class LivePanel:
    """An :class:`gandoctor.live.AlertSink` that shows each mode as failing, clear or not checked."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._live: Live | None = None
        self._new: list[Finding] = []
        self.renders = 0

    def on_finding(self, finding: Finding, step: int) -> None:
        self._new.append(finding)

    def on_check(self, report: Report, step: int) -> None:
        renderable = panel(report, step, tuple(self._new))
        self._new.clear()
        if self._live is None:
            # No refresh thread: the panel changes only when a check ran.
            self._live = Live(renderable, console=self.console, auto_refresh=False, transient=False)
            self._live.start(refresh=True)
        else:
            self._live.update(renderable, refresh=True)
        self.renders += 1

    def close(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def __enter__(self) -> LivePanel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
