"""The seeds' ablations in small: what each choice of Group Fisher and ACPLI's gates buys.

    .venv/bin/python benchmarks/ablations.py --profile device_profiles/<this machine's profile>.csv

One net (the first of --specs) at the first budget of --shares (a share of its measured
latency), each variant pruned and fine-tuned as in peers.py (the same training steps and
learning-rate rule, no teacher), --seeds seeds, with measured .pte latency, MACs, parameters and
top-1, and each variant's paired difference from the method as we run it:
- Group Fisher (Liu et al.) as we run it, then with rounds of removals 64 samples apart instead
  of 512 (decisions on less evidence, nearer the run of 2026-12-05), without coupled-channel
  grouping (each block's gradient at its first consumer only, as a layer-by-layer method sees
  it), without normalisation (importance alone, ranked rather than selected per measured
  millisecond), normalised by FLOPs or memory instead of latency, without its per-group floor
  and with the earlier floor of a quarter, and with magnitude choosing which blocks of a group
  go;
- ACPLI's gates as we run them, then without the logit predictors (plain learned logits),
  without the entropy loss, with the paper's one-sided budget loss, and with all the settings of
  before 2026-12-06 (one-sided loss at weight 5, gate rate 0.02, momentum 0.9: the gates did not
  reach their budget in 40 steps);
- block 1 against the device's block (fisher): does block alignment buy measured speed?
"""
from __future__ import annotations

import argparse
import copy
import time

from measured import this_machine
from peers import Contender, Measured, add_arguments, plot, run, settle, table
from resume import forget

ABLATIONS = (
    Contender("fisher", "fisher"),
    Contender("fisher, rounds 64 samples apart", "fisher", (("min_samples", 64),)),
    Contender("fisher, no grouping", "fisher", (("grouping", False),)),
    Contender("fisher, not normalised", "fisher", (("normalise", "none"),)),
    Contender("fisher, FLOPs-normalised", "fisher", (("normalise", "flops"),)),
    Contender("fisher, memory-normalised", "fisher", (("normalise", "memory"),)),
    Contender("fisher, no floor", "fisher", (("floor", 0.0),)),
    Contender("fisher, floor a quarter", "fisher", (("floor", 0.25),)),
    Contender("fisher, magnitude order in groups", "fisher", (("magnitude_order", True),)),
    Contender("fisher, block 1", "fisher", block=1),
    Contender("gates", "gates"),
    Contender("gates, no predictors", "gates", (("predictors", False),)),
    Contender("gates, no entropy loss", "gates", (("entropy_weight", 0.0),)),
    Contender("gates, one-sided budget loss", "gates", (("budget_loss", "relu"),)),
    Contender("gates, settings before 2026-12-06", "gates",
              (("budget_loss", "relu"), ("budget_weight", 5.0), ("gate_lr", 0.02), ("momentum", 0.9))),
)
FAMILIES = ("fisher", "gates")
# --quick (the test suite) leaves out block 1: its plans need rows at every narrow width,
# measured on demand, which cost 200 s of lowering on the tiny test net (3/4 of the quick run);
# measuring narrow rows on demand is tested in tests/test_cost.py.
QUICK = tuple(c for c in ABLATIONS if c.block != 1)


def chosen(families, variants=None, quick=False) -> list:
    """The variants a run makes: those of ``families``, only ``variants`` (labels) where given,
    and always each family's reference row (the method as we run it), which the others are
    paired with. (Why a subset: the fisher half took 82 minutes on the AMD EPYC VM, in three
    parts that each finished within a session on a machine that keeps nothing between them.)"""
    offered = QUICK if quick else ABLATIONS
    unknown = set(variants or ()) - {c.label for c in ABLATIONS}
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose among {[c.label for c in ABLATIONS]}")
    return [c for c in offered if c.method in families
            and (variants is None or c.label == c.method or c.label in variants)]


def plot_name(families, variants=None) -> str:
    """A part's figure is named after its variants too, so two parts of a family do not
    overwrite each other's: ``ablations-fisher-no-floor-block-1``."""
    words = [*families, *(v.split(", ", 1)[-1] for v in variants or ())]
    return "ablations-" + "-".join(w.replace(" ", "-") for w in words)


def ablations(args, here, measure: Measured) -> list[dict]:
    """The ablation table of the first net and budget."""
    spec, share = args.specs[0], args.shares[0]
    # Each variant's plan is chosen on the profile's prediction (--ablation-rounds, default 0)
    # and measured once for the table. Measured rounds would move every variant to the same
    # measured latency and hide what a choice buys in measured speed (block 1 against the
    # device's block); without them an ablation also costs one lowering instead of three.
    settings = copy.copy(args)
    settings.measured_rounds = args.ablation_rounds
    variants = chosen(args.families, args.variants, args.quick)
    print(f"\nablations: {spec} at {100 * share:g}% of its measured latency ({len(variants)} variants; "
          + ("plans chosen on the profile's prediction, measured once" if not settings.measured_rounds else
             f"up to {settings.measured_rounds} plans measured") + ")", flush=True)
    pruned, budgets = run(variants, [spec], [share], settings, here, measure, headline=None,
                          name="ablations")
    if args.quick:
        print("(--quick: without the block-1 ablation)", flush=True)
    return [row for family in args.families
            for row in table(pruned, budgets, [c for c in variants if c.method == family], settings, headline=family)]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--ablation-rounds", type=int, default=0,
                        help="measured rounds of the variants (0: plans chosen on the profile's prediction, each "
                             "measured once for the table)")
    # Each family's rows are paired with its own reference row only, so the run splits into parts
    # by family (the whole run took about 2 hours on the AMD EPYC VM; each part resumes on its own).
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=FAMILIES,
                        help="which method's variants to run (default: all)")
    parser.add_argument("--variants", nargs="*", metavar="LABEL",
                        help="only these variants (their labels in the table, e.g. 'fisher, no floor'), besides "
                             "each family's reference row (default: all of --families)")
    args = settle(parser.parse_args(argv), quick_seeds=1)
    started = time.perf_counter()
    here = this_machine(args.profile, args.processes, "ablations", args.threads)
    rows = ablations(args, here, Measured(here))
    if args.plots:
        plot(rows, args.plots, plot_name(args.families, args.variants))
    forget()
    print(f"\nall done in {(time.perf_counter() - started) / 60:.1f} min")
    return rows


if __name__ == "__main__":
    main()
