"""The seeds' ablations in small: what each choice of Group Fisher and ACPLI's gates buys.

    .venv/bin/python benchmarks/ablations.py --profile device_profiles/host-amd-epyc-f25m17-executorch-1t.csv
    (benchmarks/peers.py runs them too, after its side-by-side tables)

One net (the first of --specs) at the first budget of --shares (a share of its measured
latency), each variant pruned and fine-tuned as in peers.py (same steps, no teacher), --seeds
seeds, with measured .pte latency, MACs, parameters and top-1:
- Group Fisher (Liu et al.) as we run it, then without coupled-channel grouping (each block's
  gradient at its first consumer only, as a layer-by-layer method sees it), without
  normalisation (importance alone), and normalised by FLOPs or memory instead of latency;
- ACPLI's gates as we run them, then without the logit predictors (plain learned logits) and
  without the entropy loss;
- block 1 against the device's block (fisher): does block alignment buy measured speed?
"""
from __future__ import annotations

import argparse
import copy
import time

from measured import this_machine
from peers import Contender, Measured, Pruned, add_arguments, run, settle, table
from resume import forget

ABLATIONS = (
    Contender("fisher", "fisher"),
    Contender("fisher, no grouping", "fisher", (("grouping", False),)),
    Contender("fisher, not normalised", "fisher", (("normalise", "none"),)),
    Contender("fisher, FLOPs-normalised", "fisher", (("normalise", "flops"),)),
    Contender("fisher, memory-normalised", "fisher", (("normalise", "memory"),)),
    Contender("fisher, block 1", "fisher", block=1),
    Contender("gates", "gates"),
    Contender("gates, no predictors", "gates", (("predictors", False),)),
    Contender("gates, no entropy loss", "gates", (("entropy_weight", 0.0),)),
)
# --quick (the test suite) leaves out block 1: its plans need rows at every narrow width,
# measured on demand, which cost 200 s of lowering on the tiny test net (3/4 of the quick run);
# measuring narrow rows on demand is tested in tests/test_cost.py.
QUICK = tuple(c for c in ABLATIONS if c.block != 1)


def ablations(args, here, measure: Measured, done: list[Pruned] = ()) -> list[dict]:
    """The ablation table; ``done``: peers' pruned nets, whose fisher and gates rows at this net
    and budget are reused rather than trained again when they were chosen the same way (the
    same measured rounds)."""
    spec, share = args.specs[0], args.shares[0]
    # Each variant's plan is chosen on the profile's prediction (--ablation-rounds, default 0)
    # and measured once for the table. Measured rounds would move every variant to the same
    # measured latency and hide what a choice buys in measured speed (block 1 against the
    # device's block); without them an ablation also costs one lowering instead of three.
    settings = copy.copy(args)
    settings.measured_rounds = args.ablation_rounds
    same = args.ablation_rounds == args.measured_rounds
    reused = [p for p in done if same and (p.spec, p.share) == (spec, share) and p.method in ("fisher", "gates")
              and "no KD" in p.top1]
    chosen = QUICK if args.quick else ABLATIONS
    todo = [c for c in chosen if c.label not in {p.method for p in reused}]
    print(f"\nablations: {spec} at {100 * share:g}% of its measured latency ({len(todo)} variants to run"
          f"{', fisher and gates taken from the tables above' if reused else ''}; "
          + ("plans chosen on the profile's prediction, measured once" if not settings.measured_rounds else
             f"up to {settings.measured_rounds} plans measured") + ")", flush=True)
    pruned, budgets = run(todo, [spec], [share], ("no KD",), settings, here, measure, name="ablations")
    if args.quick:
        print("(--quick: without the block-1 ablation)", flush=True)
    return table(reused + pruned, budgets, list(chosen), ("no KD",), settings)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = settle(parser.parse_args(argv))
    started = time.perf_counter()
    here = this_machine(args.profile, args.processes, "ablations", args.threads)
    rows = ablations(args, here, Measured(here))
    forget()
    print(f"\nall done in {(time.perf_counter() - started) / 60:.1f} min")
    return rows


if __name__ == "__main__":
    main()
