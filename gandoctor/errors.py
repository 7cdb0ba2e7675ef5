"""One base error for everything gandoctor raises on purpose; subclasses say which part failed."""

from __future__ import annotations


class GanDoctorError(Exception):
    """Base class of every error gandoctor raises deliberately."""


class RuleError(GanDoctorError):
    """A rule file or rule override is invalid. The message names the file and the key."""


class ConfigError(GanDoctorError):
    """A project configuration (pyproject.toml / --config) is invalid."""


class LogFormatError(GanDoctorError):
    """A log file cannot be read. The message names the file, the line and what was expected."""


class SignalError(GanDoctorError):
    """A signal name or value is not acceptable."""
