"""One base error for everything gandoctor raises on purpose; subclasses say which part failed."""

from __future__ import annotations

from collections.abc import Iterable


class GanDoctorError(Exception):
    """Base class of every error gandoctor raises deliberately."""


class RuleError(GanDoctorError):
    """A rule file or rule override is invalid. The message names the file and the key."""


class ConfigError(GanDoctorError):
    """A project configuration (pyproject.toml / --config) is invalid."""


class LogFormatError(GanDoctorError):
    """A log file cannot be read. The message names the file, the line and what was expected."""


class ProbeRefused(GanDoctorError, ValueError):
    """A probe cannot read the model as it is set up (an autoencoder D's reconstruction, a G that
    takes none of the guessed latent shapes). The message says what to pass; the probe is
    switched off and the warning carries no traceback (nothing is broken). ``established``: what
    the refusal found out about the run, as run-context flags (an autoencoder D is an energy D),
    noted by the doctor so the rules can stand down where they would misread it."""

    def __init__(self, message: str, established: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.established = frozenset(established)


class SignalError(GanDoctorError):
    """A signal name or value is not acceptable."""


class NonFiniteLossError(GanDoctorError):
    """A loss was NaN or infinite and the Doctor was built with ``raise_on_nonfinite=True``.

    The one exception gandoctor raises into a training loop, and only when asked to. It is raised
    from the ``doctor.step()`` call whose flush brought the value to the host: at most
    ``Schedule.flush_every - 1`` steps after the step it names (the same step with ``flush_every=1``).
    ``step`` is the first step whose loss was not finite, ``loss`` the signal (``"loss.d"`` or
    ``"loss.g"``), ``value`` what it was, ``detected_at`` the step of the flush that saw it.
    """

    def __init__(self, step: int, loss: str, value: float, detected_at: int) -> None:
        self.step, self.loss, self.value, self.detected_at = step, loss, value, detected_at
        argument = {"loss.d": "d_loss", "loss.g": "g_loss"}.get(loss, loss)
        super().__init__(
            f"{argument} ({loss}) is {value} at step {step}: stopped by raise_on_nonfinite=True "
            f"(seen at the flush of step {detected_at}); roll back to a checkpoint from before step {step}"
        )

    def __reduce__(self) -> tuple[type, tuple[int, str, float, int]]:  # picklable across processes (DDP spawn)
        return type(self), (self.step, self.loss, self.value, self.detected_at)
