"""The values every rank of a torch.distributed run recorded, reduced across the ranks at each flush.

Under DistributedDataParallel every rank runs its own Doctor, and its probes see that rank's
shard of the batch. At each flush (every ``Schedule.flush_every`` doctor steps, 25 by default)
the ranks combine what they recorded, so every rank records the same values and rank 0's run log
describes the whole run: losses and statistics are averaged over the ranks that recorded them;
gradient norms, weight norms, D's largest singular value and non-finite counts and flags take
the maximum (:func:`takes_max`), so one rank's blow-up is the run's; a NaN on any rank stays a
NaN. Only rank 0 writes the run log; nothing is printed on any rank.

Cost: the reduction runs on a side gloo group, created once by every rank's Doctor, so the
user's own (NCCL) collectives never see it. Per flush, on the host: one all_reduce of a small
header, one SUM and one MAX all_reduce of the flushed values (a few kB), and an all_gather of
the step and signal names only when the ranks recorded different ones (e.g. the overhead budget
stretched a probe on one rank). Nothing runs per step.

Safety: create the Doctor on every rank at the same point of the script (as DDP itself), and close
it before ``destroy_process_group()``. Flushes happen at the same step counts on every rank.
``Doctor.report()`` runs no collective, so it may be called on rank 0 alone; it diagnoses the
reduced values up to the last flush and this rank's own since (after ``close()``, all of them
reduced). A rank that closes its Doctor (at the end of its loop, or at interpreter exit) tells the
others at its last flush; they switch the reduction off, say so once (a warning and a run-log
event) and go on recording their own values. A rank that stops flushing without closing (hung,
killed) makes the others' next flush fail after ``Schedule.rank_timeout`` seconds, or at once when
its process is gone, with the same outcome. A rank whose interpreter exits on an uncaught
exception does not wait for the others at its last flush (they are likely blocked in the
training's own collectives). ``Schedule(rank_timeout=0)`` switches the reduction off.
"""

from __future__ import annotations

import copy
import hashlib
import math
import sys
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch

from ..context import WORLD_SIZE
from ..errors import ProbeRefused
from ..runlog import round_value
from ..signals import SignalLog

Record = tuple[int, dict[str, float]]
#: One record of a flush: its step and how many earlier records of the flush had the same step.
Ident = tuple[int, int]
Layout = list[tuple[Ident, tuple[str, ...]]]
NAME = "ranks"  # the part the Doctor's fault containment switches off
_MAX_PREFIXES = ("grad_norm.", "weight_norm.", "sigma_max.")


def takes_max(name: str) -> bool:
    """Whether ``name`` is reduced across ranks by its maximum (norms, non-finite counts and
    flags); every other signal is averaged over the ranks that recorded it."""
    return name.startswith(_MAX_PREFIXES) or "nonfinite" in name


class RanksStopped(RuntimeError):
    """The reduction across ranks stopped (another rank closed its Doctor, hung or is gone): from
    here on this rank records its own values."""


def identify(records: Sequence[Record]) -> dict[Ident, dict[str, float]]:
    """One rank's records by identity (a step may come twice when the loop passes ``step=``)."""
    seen: dict[int, int] = {}
    out: dict[Ident, dict[str, float]] = {}
    for step, values in records:
        seen[step] = seen.get(step, -1) + 1
        out[(step, seen[step])] = values
    return out


def layout_of(local: dict[Ident, dict[str, float]]) -> Layout:
    return [(ident, tuple(sorted(values))) for ident, values in local.items()]


def merge(layouts: Sequence[Layout]) -> Layout:
    """The union of the ranks' layouts, in order of first appearance, rank 0 first (the same on every rank)."""
    names: dict[Ident, set[str]] = {}
    for layout in layouts:
        for ident, keys in layout:
            names.setdefault(ident, set()).update(keys)
    return [(ident, tuple(sorted(keys))) for ident, keys in names.items()]


def pack(layout: Layout, local: dict[Ident, dict[str, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One rank's values in the agreed layout: pairs (value, present) to sum, (NaN flag, present)
    for the maxima, and the maxima themselves (-inf where absent or NaN: MAX must not see a NaN)."""
    sums: list[float] = []
    maxima: list[float] = []
    for ident, keys in layout:
        values = local.get(ident, {})
        for key in keys:
            value = values.get(key)
            present = float(value is not None)
            if takes_max(key):
                nan = value is not None and math.isnan(value)
                sums += [float(nan), present]
                maxima.append(-math.inf if value is None or nan else float(value))
            else:
                sums += [0.0 if value is None else float(value), present]
    return torch.tensor(sums, dtype=torch.float64), torch.tensor(maxima, dtype=torch.float64)


def unpack(layout: Layout, sums: torch.Tensor, maxima: torch.Tensor) -> list[Record]:
    """The records the reduced tensors stand for: means over the ranks that had a value, maxima, NaN kept."""
    totals, tops = iter(sums.tolist()), iter(maxima.tolist())
    records: list[Record] = []
    for (step, _), keys in layout:
        values: dict[str, float] = {}
        for key in keys:
            total, count = next(totals), next(totals)
            if takes_max(key):
                top = next(tops)
                if count:
                    values[key] = math.nan if total else top
            elif count:
                values[key] = total / count
        records.append((step, values))
    return records


def with_pending(signals: SignalLog, records: Sequence[Record]) -> SignalLog:
    """A copy of ``signals`` with this rank's records not yet reduced: what ``Doctor.report()``
    diagnoses under torch.distributed, where it runs no collective (the reduced values up to the
    last flush, then this rank's own)."""
    if not records:
        return signals
    preview = copy.deepcopy(signals)
    for step, values in records:
        preview.record(step, {key: round_value(value) for key, value in values.items()})
    return preview


def _digest(layout: Layout) -> int:
    """62 bits of a stable hash (Python's hash() differs per process)."""
    return int.from_bytes(hashlib.blake2b(repr(layout).encode(), digest_size=8).digest(), "big") >> 2


def is_main_process() -> bool:
    """Whether this process is rank 0 of a process group, or in none: the one that writes the run
    log and speaks for the ranks."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


def _side_group(timeout: float) -> Any:
    """The gloo group the ranks' Doctors reduce over; every rank's Doctor joins it when made."""
    try:
        return torch.distributed.new_group(backend="gloo", timeout=timedelta(seconds=timeout))
    except Exception as exc:  # a Doctor made on rank 0 alone waited for the others' until the store timed out
        raise ProbeRefused(
            f"the other ranks made no Doctor to combine records with ({type(exc).__name__}: {str(exc)[:120]}): make the Doctor "
            "on every rank, at the same point (rank 0 alone writes the run log), or pass Schedule(rank_timeout=0) to "
            "record this rank alone; from here on this rank records its own values"
        ) from exc


class RankReducer:
    """Reduces one flush's records across the ranks (module docstring); passes them through
    outside torch.distributed, with one rank, with ``timeout`` 0, or once switched off.

    ``guard(name, fn)`` and ``disable(name, exc)`` are the Doctor's fault containment: a failed
    reduction is reported once and switched off, and recording goes on with this rank's values.
    """

    def __init__(self, timeout: float, guard: Callable[[str, Callable[[], Any]], Any], disable: Callable[[str, BaseException], None]) -> None:
        self._guard, self._disable = guard, disable
        self.group: Any = None
        self.rank, self.world = 0, 1
        dist = torch.distributed
        if timeout > 0 and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            # A collective every rank enters here; the timeout bounds every later one on this group.
            self.group = guard(NAME, lambda: _side_group(timeout))

    def context_values(self) -> dict[str, int]:
        """What the run's context says of the ranks: a log of reduced values, over how many."""
        return {WORLD_SIZE: self.world} if self.active else {}

    @property
    def active(self) -> bool:
        """Whether flushes reduce across ranks (and so must come at the same step counts on every rank)."""
        return self.group is not None

    def reduce(self, records: list[Record], final: bool = False) -> list[Record]:
        """The records reduced across ranks; ``final``: this rank's last flush (its Doctor closes)."""
        if self.group is None:
            return records
        if not torch.distributed.is_initialized() or (final and getattr(sys, "last_value", None) is not None):
            # The process group is gone (destroyed before close()), or this is the interpreter
            # exiting after an uncaught exception: the other ranks are likely blocked in the
            # training's own collectives, and waiting for them would only delay the crash.
            self.group = None
            return records
        reduced = self._guard(NAME, lambda: self._exchange(records, final))
        if reduced is None:  # failed (a rank gone or late): reported once by the guard
            self.group = None
            return records
        return reduced

    def _exchange(self, records: list[Record], final: bool) -> list[Record]:
        try:
            reduced, closed = self._all_reduce(records, final)
        except Exception as exc:
            raise RanksStopped(
                f"the reduction across ranks failed (a rank hung, stopped or gone?): {type(exc).__name__}: {exc}; "
                "from here on this rank records its own values"
            ) from exc
        if closed:
            self.group = None  # a rank that closed enters no more collectives
            if not final:
                self._disable(NAME, RanksStopped(
                    f"rank {', '.join(map(str, closed))} closed its doctor: from here on this rank records its own values"
                ))
        return reduced

    def _all_reduce(self, records: list[Record], final: bool) -> tuple[list[Record], list[int]]:
        """The reduced records and the ranks that closed their Doctor at this flush."""
        dist = torch.distributed
        local = identify(records)
        layout = layout_of(local)
        digest = _digest(layout)
        header = torch.zeros(self.world + 2, dtype=torch.int64)
        header[self.rank] = int(final)
        header[-2], header[-1] = digest, -digest
        dist.all_reduce(header, dist.ReduceOp.MAX, group=self.group)
        flags = header.tolist()
        if flags[-2] != -flags[-1]:  # digests differ (max != min): the ranks agree on the union of their layouts
            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, layout, group=self.group)
            layout = merge(gathered)
        sums, maxima = pack(layout, local)
        if sums.numel():
            dist.all_reduce(sums, dist.ReduceOp.SUM, group=self.group)
        if maxima.numel():
            dist.all_reduce(maxima, dist.ReduceOp.MAX, group=self.group)
        return unpack(layout, sums, maxima), [rank for rank in range(self.world) if flags[rank]]
