"""The `bench speed` table."""
from __future__ import annotations

import math


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def format_report(result: dict) -> str:
    from tabulate import tabulate

    head = (f"bench speed: synthetic {result['dataset_shape']} ({result['train_size']:,} training images of "
            f"{'x'.join(map(str, result['image_shape']))} uint8, {result['num_classes']} classes), "
            f"{result['model']}, batch {result['batch_size']}, protocol {result['protocol']}\n"
            f"device {result['device_name']}, torch {result['torch']}; {result['steps']} timed steps of epoch "
            f"{result['timed_epoch'] + 1} after {result['warmup']} warm-up steps, best of {result['repeats']}; "
            f"evaluation timed on {result['eval_images_timed']:,} test images, scaled to {result['test_size']:,}"
            + (f"; trainer networks torch.compile'd (mode {result['compile']})" if result["compile"] else ""))
    table = [[r["loop"], _fmt(r["img_per_s"], ",.1f"), _fmt(r["step_ms"], ",.1f"), _fmt(r["s_per_epoch"], ",.2f"),
              _fmt(r["eval_s_per_epoch"], ",.2f"), _fmt(r["hours_per_trial"], ",.2f"),
              _fmt(r["speedup_vs_reference"], ".2f"), _fmt(r["cost_vs_standard"], ".2f"),
              _fmt(r["host_syncs_per_step"], ".1f"), _fmt(r["epoch_hook_s"], ",.2f")] for r in result["rows"]]
    epochs = sorted({r["epochs"] for r in result["rows"]})
    headers = ["loop", "img/s", "ms/step", "s/epoch", "of which eval",
               f"h per {'/'.join(map(str, epochs))}-epoch trial", "x reference speed", "x standard's time",
               "host syncs/step", "epoch plan s"]
    lines = [head, "", tabulate(table, headers=headers, tablefmt="github")]
    lines.append("(s/epoch = training images / img/s + evaluation.  Not included: the method's epoch plan, timed once "
                 "at the timed epoch, which phase methods run on some epochs only (GCE's pruning passes, "
                 "self-learning's prototype elections, Me-Momentum's confident sets); and checkpoints, "
                 "which `bench run --checkpoint-every N` makes less frequent)")
    if result["pack"]:
        pack_table = [[p["processes"], _fmt(p["aggregate_img_per_s"], ",.1f"), _fmt(p["per_process_img_per_s"], ",.1f"),
                       _fmt(p["gain_vs_one"], ".2f"), p["threads_per_process"]] for p in result["pack"]]
        lines += ["", f"packing: K concurrent processes, each training {result['pack'][0]['method']} "
                      f"(bench run --trials-per-gpu K)", "",
                  tabulate(pack_table,
                           headers=["K", "aggregate img/s", "img/s per process", "x K=1", "CPU threads each"],
                           tablefmt="github")]
    return "\n".join(lines)
