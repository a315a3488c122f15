"""Meeting the budget as the device measures it, not only as the profile predicts it.

A plan is chosen on the profile's prediction, which for one pruned variant can be 10-20% off its
measured latency (fashion:mobilenet_w1 on an AMD EPYC VM: plans all predicted at 0.810 ms
measured 0.666-0.880 ms; each layer's row is right alone, their sum inside a model less so).
So, given the profile's device, the chosen plan is lowered to the profile's runtime and measured
there (speed-normalised, comparable with the profile's ms), and while it misses the budget the
plan is chosen again from the *same* importance, aiming the prediction at the budget scaled by
how far the last measurement was off (aim x budget / measured). No training happens again:
only which blocks are kept moves, so this costs one lowering and measurement per round.

A round stops the loop when its plan measures within ``close`` under the budget. Of every plan
measured, the one kept is the slowest that meets the budget (the most kept for the time
allowed); if none does, the fastest, and the report says the budget was not met.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

CLOSE = 0.05  # a plan measured within 5% under the budget is close enough


@dataclass
class MeasuredRounds:
    budget: float  # ms on the profile's device
    rounds: list = field(default_factory=list)  # {"aim", "predicted", "measured"} per plan measured
    chosen: int | None = None  # index into rounds

    @property
    def met(self) -> bool:
        return self.chosen is not None and self.rounds[self.chosen]["measured"] <= self.budget

    def to_dict(self) -> dict:
        best = self.rounds[self.chosen] if self.chosen is not None else {}
        return {"budget": self.budget, "met": self.met, "ms": best.get("measured"), "rounds": self.rounds}


def meet_measured(reselect: Callable[[float], dict], price: Callable[[dict], float],
                  measure: Callable[[dict], float], budget: float, rounds: int,
                  close: float = CLOSE) -> tuple[dict, MeasuredRounds]:
    """The selection whose measured latency best meets ``budget``, and the rounds that found it.

    ``reselect(aim)``: the method's selection for a predicted budget ``aim``; ``price``: a
    selection's prediction; ``measure``: a selection's measured ms (lowered and run on the
    device). At most ``rounds`` measurements; a selection already measured is not measured again
    (its aim still moves on from its measurement)."""
    log = MeasuredRounds(budget)
    selections, measured = [], {}  # measured: selection key -> ms
    aim = budget
    for _ in range(4 * rounds):  # plans already measured cost nothing, but two may take turns
        if len(measured) == rounds:
            break
        selection = reselect(aim)
        key = _key(selection)
        fresh = key not in measured
        if fresh:
            measured[key] = measure(selection)
            selections.append(selection)
            log.rounds.append({"aim": aim, "predicted": price(selection), "measured": measured[key]})
        ms = measured[key]
        if (1 - close) * budget <= ms <= budget:
            break
        next_aim = aim * budget / ms
        if not fresh and _key(reselect(next_aim)) == key:
            break  # the aim moved and the plan did not: block granularity (or the floor) ends here
        aim = next_aim
    meeting = [i for i, r in enumerate(log.rounds) if r["measured"] <= budget]
    log.chosen = max(meeting, key=lambda i: log.rounds[i]["measured"]) if meeting else \
        min(range(len(log.rounds)), key=lambda i: log.rounds[i]["measured"])
    return selections[log.chosen], log


def _key(selection: dict) -> tuple:
    return tuple((gid, tuple(bool(k) for k in kept)) for gid, kept in sorted(selection.items()))
