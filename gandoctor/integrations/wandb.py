"""Send the doctor's findings to Weights & Biases as alerts (``pip install 'gandoctor[wandb]'``).

::

    run = wandb.init(project="gan")
    sink = WandbAlerts()                      # the active run (wandb.run), or WandbAlerts(run)

Each new finding becomes ``run.alert(title, text, level)`` (W&B sends it by e-mail or Slack,
as the user's W&B settings say): the title names the mode and onset, the text the rule,
confidence, evidence and the top remedies with their sources. After every live check each
judged mode is logged as ``gandoctor/health/<mode>`` (1 = clear, 0 = failing, 0.5 = failed earlier
but no longer holds; see :mod:`gandoctor.integrations.tensorboard`) at the training step.
wandb is imported only when a sink is made.
"""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from ..report import Report
from . import _health
from ._common import IntegrationError

LEVELS = ("INFO", "WARN", "ERROR")
_TITLE_MAX = 63  # W&B refuses alert titles of 64 characters or more


def _wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise ImportError("W&B alerts need wandb: pip install 'gandoctor[wandb]'") from exc
    return wandb


class WandbAlerts:
    """An alert sink that raises a W&B alert per finding and logs per-mode health.

    ``run``: a W&B run (``wandb.init()``'s return value); None means the active ``wandb.run``.
    ``level``: ``"INFO"``, ``"WARN"`` or ``"ERROR"`` (or a ``wandb.AlertLevel``).
    ``log_step``: log the health at the doctor's step (``run.log(..., step=step)``); False
    attaches it to the run's current step instead, for a run whose W&B step is not the training
    step (W&B drops values logged at a step behind its own)."""

    def __init__(self, run: Any = None, level: Any = "WARN", log_step: bool = True, prefix: str = "gandoctor", max_remedies: int = 3) -> None:
        name = str(getattr(level, "value", level)).upper()
        if name not in LEVELS:
            raise ValueError(f"WandbAlerts(level=...): expected one of {', '.join(LEVELS)}, got {level!r}")
        if run is None:
            run = _wandb().run
            if run is None:
                raise IntegrationError("WandbAlerts(): no active W&B run; call wandb.init() first or pass run=")
        for method in ("alert", "log"):
            if not callable(getattr(run, method, None)):
                raise IntegrationError(f"WandbAlerts(run=...): expected a W&B run with .alert and .log, got {type(run).__name__}")
        self.run = run
        self.level = self._alert_level(name)
        self.log_step = log_step
        self.prefix = prefix.rstrip("/")
        self.max_remedies = max_remedies

    @staticmethod
    def _alert_level(name: str) -> Any:
        try:
            import wandb
        except ImportError:  # a run object from elsewhere (a test double, a wrapper): the plain name
            return name
        levels = getattr(wandb, "AlertLevel", None)
        return levels(name) if levels is not None else name

    def on_finding(self, finding: Finding, step: int) -> None:
        """One alert: title ``gandoctor: <mode> from step <onset>``, the finding as Markdown."""
        title = f"gandoctor: {finding.mode} from step {finding.onset_step}"[:_TITLE_MAX]
        text = f"{_health.title(finding)}, found at training step {int(step)}.\n\n" + _health.markdown(finding, self.max_remedies)
        self.run.alert(title=title, text=text, level=self.level)

    def on_check(self, report: Report, step: int) -> None:
        """Log each judged mode's health (and a failing mode's confidence)."""
        data: dict[str, float] = {f"{self.prefix}/health/{mode}": v for mode, v in _health.health(report).items()}
        data.update({f"{self.prefix}/confidence/{mode}": v for mode, v in _health.confidences(report).items()})
        if not data:
            return
        if self.log_step:
            self.run.log(data, step=int(step))
        else:
            self.run.log(data, commit=False)
