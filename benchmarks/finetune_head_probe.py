"""Probe for a follow-up issue, not a product feature: does fine-tuning do better when it starts
from the pretrained body's own head (its first ``horizon`` outputs) instead of a fresh one?

On ett-standard at 720 points, zero-shot (body and head as they are) beat fine-tuning (body, fresh
head, everything trained) on ETTh2 (docs/protocols.md). This script registers, in its own process
only, a mode ``finetune_head``: the zero-shot model (body and head, the head's first outputs),
everything trained as ``finetune`` trains. It runs that mode through :func:`benchmark.run.grid.run_grid`
on the profile's transfer cells (lstm, lookback 96, ``last_value``, 720 points, 3 seeds), into a
*copy* of a results folder that already holds the profile's body and rows, so the table compares
it with scratch, finetune and zeroshot on the same test origins:

    cp -r /work/runs/p25/results /tmp/probe/results    # a finished ett-standard run
    python benchmarks/finetune_head_probe.py --results /tmp/probe/results \\
        --tracking-uri sqlite:////tmp/probe/m.db
    python benchmarks/ett_table.py --results /tmp/probe/results --wide
"""

from __future__ import annotations

import argparse
import time

from benchmark.models import transfer
from benchmark.run.engines import LocalEngine
from benchmark.run.grid import run_grid
from benchmark.spec import catalog
from benchmark.spec.profiles import load_grid
from benchmark.spec.settings import Settings

MODE = "finetune_head"


def register_mode() -> None:
    """``finetune_head``: declared in the catalogue (its facts), then registered with its phases."""
    catalog.TRANSFER_MODES.add(MODE, catalog.TransferModeFacts(True, load_head=True))
    transfer.register_mode(MODE, (transfer.Phase("none"),),  # its facts: the catalogue entry above
                           "probe: pretrained body and head (its first horizon outputs), everything trained")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="a copy of a finished ett-standard results folder")
    parser.add_argument("--tracking-uri", required=True, help="an MLflow store for the probe's runs")
    parser.add_argument("--profile", default="ett-standard")
    parser.add_argument("--data-dir", help="default $TLBENCH_DATA_DIR")
    args = parser.parse_args()
    register_mode()
    spec = load_grid(args.profile, ["subgrids=[]", "architectures=[lstm]", f"modes=[{MODE}]",
                                    "normalisations=[last_value]", "lookbacks=[96]", "target_sizes=[720]",
                                    "baselines=[]"])
    settings = Settings.from_environment(results=args.results, tracking_uri=args.tracking_uri,
                                         data_dir=args.data_dir).resolved()
    started = time.perf_counter()
    result = run_grid(spec, settings, LocalEngine(1))
    print(f"{MODE}: {result.counts()} in {time.perf_counter() - started:.0f} s; "
          f"compare: python benchmarks/ett_table.py --results {args.results} --wide")


if __name__ == "__main__":
    main()
