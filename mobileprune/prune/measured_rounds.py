"""Meeting the budget as the device measures it, not only as the profile predicts it.

A plan is chosen on the profile's prediction, which for one pruned variant can be 10-20% off its
measured latency (fashion:mobilenet_w1 on an AMD EPYC VM: plans all predicted at 0.810 ms
measured 0.666-0.880 ms; each layer's row is right alone, their sum inside a model less so).
So, given the profile's device, the chosen plan is lowered to the profile's runtime and measured
there (speed-normalised, comparable with the profile's ms), and while it misses the budget the
plan is chosen again from the *same* importance, aiming the prediction at the middle of the
accepted window: scaled by how far the last measurement was off (aim x target / measured) until
one aim measured under the budget and another over it, then interpolated between those two
(a plan's measured latency can jump with a block: on fashion:mobilenet_w1 the scaled step went
0.434 -> 0.322 -> 0.563 ms for a 0.409 ms budget, leaving the bracket it had found). A round
costs one lowering and measurement; for a trained method, an aim tighter than any it trained
towards also costs a training run at that aim (api.TrainedRuns: choosing tighter from a looser
run's ranking cut blocks the net relied on).

The first aim is the budget unless the caller knows better (``first_aim``: e.g. where an earlier
run of the same method on the same net and device ended). A trained method trains towards its
first aim, so a first aim already at the right place saves the rounds and the training runs a
tighter aim would cost, and the net trains with the plan it keeps.

A round stops the loop when its plan measures within ``close`` under the budget. Of every plan
measured, the one kept is the slowest that meets the budget (the most kept for the time
allowed); if none does, the fastest, and the report says the budget was not met.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import SettingsError

CLOSE = 0.05  # a plan measured within 5% under the budget is close enough


@dataclass(frozen=True, kw_only=True)
class MeasuredRounds:
    """How ``mobileprune.prune`` meets a latency budget as measured on the profile's device (given
    as ``device``): up to ``rounds`` plans lowered and measured there, each in ``processes``
    fresh processes, the selection made again until one measures at or just under the budget.
    ``first_aim``: the predicted latency to train towards and select at first instead of the
    budget, e.g. the aim at which an earlier run of this method on this net and device met its
    budget (the report's "measured"/"aim"): the rounds go on from there. ``original_ms``: the
    original's latency if the caller measured it the same way (else measured here); a share
    budget ("50%") is of it."""
    rounds: int = 3
    processes: int = 3
    first_aim: float | None = None
    original_ms: float | None = None

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.processes < 1:
            raise SettingsError(f"measured rounds need rounds >= 1 and processes >= 1, not {self.rounds} and "
                             f"{self.processes}")
        if self.first_aim is not None and not self.first_aim > 0:
            raise SettingsError(f"first_aim={self.first_aim!r}: a positive predicted latency")
        if self.original_ms is not None and not self.original_ms > 0:
            raise SettingsError(f"original_ms={self.original_ms!r}: the original's positive measured latency")


@dataclass
class RoundsLog:
    budget: float  # ms on the profile's device
    rounds: list = field(default_factory=list)  # {"aim", "predicted", "measured"} per plan measured
    chosen: int | None = None  # index into rounds

    @property
    def met(self) -> bool:
        return self.chosen is not None and self.rounds[self.chosen]["measured"] <= self.budget

    def to_dict(self) -> dict:
        best = self.rounds[self.chosen] if self.chosen is not None else {}
        return {"budget": self.budget, "met": self.met, "ms": best.get("measured"), "aim": best.get("aim"),
                "rounds": self.rounds}


def aim_per_ms(measured: dict, close: float = CLOSE) -> float | None:
    """From a met ``RoundsLog.to_dict()``: the predicted aim per measured ms that would land
    a plan mid-window (where the rounds aim), to start a later, similar run at (``first_aim`` =
    this x its budget); None if the budget was not met."""
    if not measured.get("met") or not measured.get("aim"):
        return None
    return measured["aim"] * (1 - close / 2) / measured["ms"]


def meet_measured(reselect: Callable[[float], dict], price: Callable[[dict], float],
                  measure: Callable[[dict], float], budget: float, rounds: int,
                  close: float = CLOSE, first_aim: float | None = None) -> tuple[dict, RoundsLog]:
    """The selection whose measured latency best meets ``budget``, and the rounds that found it.

    ``reselect(aim)``: the method's selection for a predicted budget ``aim``; ``price``: a
    selection's prediction; ``measure``: a selection's measured ms (lowered and run on the
    device). At most ``rounds`` measurements; a selection already measured is not measured again
    (its aim still moves on from its measurement). ``first_aim``: the predicted budget of the
    first round (default: ``budget``)."""
    log = RoundsLog(budget)
    selections, measured = [], {}  # measured: selection key -> ms
    tried = []  # (aim, measured ms) of every round, repeated plans included
    aim = budget if first_aim is None else first_aim
    for _ in range(4 * rounds):  # plans already measured cost nothing, but two may take turns
        if len(measured) == rounds:
            break
        selection = reselect(aim)
        key = selection_key(selection)
        fresh = key not in measured
        if fresh:
            measured[key] = measure(selection)
            selections.append(selection)
            log.rounds.append({"aim": aim, "predicted": price(selection), "measured": measured[key]})
        ms = measured[key]
        tried.append((aim, ms))
        if (1 - close) * budget <= ms <= budget:
            break
        next_aim = aim_between(tried, (1 - close / 2) * budget, budget)
        if not fresh and selection_key(reselect(next_aim)) == key:
            break  # the aim moved and the plan did not: block granularity (or the floor) ends here
        aim = next_aim
    meeting = [i for i, r in enumerate(log.rounds) if r["measured"] <= budget]
    log.chosen = max(meeting, key=lambda i: log.rounds[i]["measured"]) if meeting else \
        min(range(len(log.rounds)), key=lambda i: log.rounds[i]["measured"])
    return selections[log.chosen], log


def aim_between(tried: list, target: float, budget: float) -> float:
    """The next aim, from ``tried`` = (aim, measured) pairs, for a measurement at ``target``: between
    the highest aim that measured at most ``budget`` and the lowest that measured over it, where the
    two bracket it (linear in between); otherwise the last aim scaled by how far its measurement
    was off. (The measured rounds aim predicted ms at measured ms; benchmarks/peers.py aims
    measured ms at a latency ratio in turns.)"""
    under = [t for t in tried if t[1] <= budget]
    over = [t for t in tried if t[1] > budget]
    if under and over:
        (lo, lo_ms), (hi, hi_ms) = max(under), min(over)
        if lo < hi and lo_ms < hi_ms:
            return lo + (hi - lo) * min(1.0, max(0.0, (target - lo_ms) / (hi_ms - lo_ms)))
    aim, ms = tried[-1]
    return aim * target / ms


def selection_key(selection: dict) -> tuple:
    return tuple((gid, tuple(bool(k) for k in kept)) for gid, kept in sorted(selection.items()))
