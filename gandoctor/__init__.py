"""gandoctor: watches GAN training and says, with evidence, what is going wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config, load_config
from .diagnose import analyze, diagnose, infer_from_log
from .errors import ConfigError, GanDoctorError, LogFormatError, NonFiniteLossError, ProbeRefused, RuleError, SignalError
from .findings import Evidence, Finding, RankedRemedy, RunContext
from .readers import RunData, read_run
from .report import Report
from .rules import MODES, Rule, RuleSet, load_rules
from .signals import SIGNALS, SignalLog

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .probes import Doctor, Schedule

__all__ = [
    "MODES",
    "SIGNALS",
    "Config",
    "ConfigError",
    "Doctor",
    "Evidence",
    "Finding",
    "GanDoctorError",
    "ProbeRefused",
    "LogFormatError",
    "NonFiniteLossError",
    "RankedRemedy",
    "Report",
    "Rule",
    "RuleError",
    "RuleSet",
    "RunContext",
    "RunData",
    "Schedule",
    "SignalError",
    "SignalLog",
    "analyze",
    "diagnose",
    "infer_from_log",
    "load_config",
    "load_rules",
    "read_run",
]


def __getattr__(name: str) -> Any:
    # torch is imported only when the Doctor is used, so the CLI and CI gate start fast.
    if name in ("Doctor", "Schedule"):
        from . import probes

        return getattr(probes, name)
    raise AttributeError(f"module 'gandoctor' has no attribute {name!r}")
