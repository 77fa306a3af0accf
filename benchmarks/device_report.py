"""device_check.md: the device check's report (device_check.json) as a readable summary, one
section per step, every figure labelled with the device it was measured on."""
from __future__ import annotations

import math


def fmt(value, spec: str = ",.2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def md_table(headers: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def measured_on(step: dict, report: dict) -> str:
    context = step["results"].get("context") or {}
    name = context.get("device_name") or report["environment"].get("device_name") or step["device"]
    return f"*Measured on {name}* (device `{context.get('device', step['device'])}`)."


def render_markdown(report: dict) -> str:
    env = report["environment"]
    steps = {s["name"]: s for s in report["steps"]}
    ok = sum(s["status"] == "ok" for s in report["steps"])
    lines = [f"# noisybench device check: {'PASSED' if report['passed'] else 'FAILED'}", "",
             (f"Device `{report['device']}`{' (--tiny sizes)' if report['tiny'] else ''}; {ok}/{len(steps)} steps "
             f"ok in {report['total_seconds']:.1f} s; started {report['started']}.  Every figure below was measured "
             f"in this run on the device its section names."), "",
             "## Environment", ""]
    keys = ["device_name", "gpu_memory_gib", "compute_capability", "bf16_supported", "nvidia_smi", "torch",
            "torchvision", "cuda_build", "cudnn", "cuda_available", "python", "platform", "cpu_count",
            "torch_threads", "omp_num_threads", "submitit", "noisybench_path"]
    lines += md_table(["", "value"], [[k, env[k]] for k in keys if k in env])
    lines.append("")
    lines += md_table(["step", "status", "seconds"],
                      [[s["title"], s["status"], fmt(s["seconds"], ".1f")] for s in report["steps"]])

    def section(name: str) -> dict | None:
        step = steps.get(name)
        if step is None:
            return None
        lines.extend(["", f"## {step['title']}", "", f"Status **{step['status']}** in {step['seconds']:.1f} s.  "
                      + (measured_on(step, report) if name != "pytest" else f"Device `{step['device']}`."), ""])
        return step

    step = section("pytest")
    if step and step["results"]:
        r = step["results"]
        lines += md_table(list(r["counts"]) or ["result"], [list(r["counts"].values()) or [r["last_line"]]])
        if r["skip_reasons"]:
            lines += ["", "Skipped:", ""] + [f"- `{s}`" for s in r["skip_reasons"]]
    step = section("speed")
    if step and step["results"].get("rows"):
        c = step["results"]["context"]
        lines += [(f"{c['model']}, batch {c['batch_size']}, protocol {c['protocol']}, {c['train_size']:,} synthetic "
                  f"training images, {c['steps']} timed steps after {c['warmup']} warm-up steps, evaluation timed on "
                  f"{c['eval_images_timed']:,} test images scaled to 10,000.  \"x reference\" = the papers' DataLoader "
                  f"loop's s/epoch / this loop's (above 1: faster); \"x standard\" = this loop's s/epoch / standard's."),
                  ""]
        lines += md_table(["loop", "s/epoch", "img/s", "x reference", "x standard", "host syncs/step",
                           "epoch hook s", "peak memory"],
                          [[r["loop"], fmt(r["s_per_epoch"]), fmt(r["img_per_s"], ",.1f"),
                            fmt(r["x_reference_speed"]), fmt(r["x_standard_time"]),
                            fmt(r["host_syncs_per_step"], ".1f"), fmt(r["epoch_hook_s"], ".3f"),
                            fmt(r["peak_memory_mib"], ",.0f")] for r in step["results"]["rows"]])
        lines += ["", (f"Peak memory: {step['results']['peak_memory_note']}: "
                       f"{memory_text(step['results']['memory'])}.")]
    step = section("pack")
    if step and step["results"].get("pack"):
        lines += md_table(["K", "aggregate img/s", "img/s per process", "x K=1", "CPU threads each", "wall s"],
                          [[p["processes"], fmt(p["aggregate_img_per_s"], ",.1f"), fmt(p["per_process_img_per_s"], ",.1f"),
                            fmt(p["gain_vs_one"]), p["threads_per_process"], fmt(p["wall_s"])]
                           for p in step["results"]["pack"]])
        lines += ["", f"Peak memory of the command: {memory_text(step['results']['memory'])}."]
    step = section("lend")
    if step and step["results"]:
        r = step["results"]
        lines += [f"`{r['header']}`; timed by {r['timing']}.", ""]
        lines += md_table(["", "median ms", "min ms"],
                          [["model step (fwd+bwd+SGD)", fmt(r["step_ms_median"]), fmt(r["step_ms_min"])],
                           ["dilute()", fmt(r["dilute_ms_median"]), fmt(r["dilute_ms_min"])],
                           ["dilute / step", f"{r['dilute_over_step_median_pct']:.2f}%",
                            f"{r['dilute_over_step_min_pct']:.2f}%"]])
    step = section("precision")
    if step and step["results"].get("rows"):
        rows = step["results"]["rows"]
        lines += md_table(["precision", "img/s", "ms/step", "s/epoch", "peak memory"],
                          [[p, fmt(r["img_per_s"], ",.1f"), fmt(r["step_ms"], ",.1f"), fmt(r["s_per_epoch"]),
                            memory_text(r["memory"])] for p, r in rows.items()])
        if "bf16_over_fp32_img_per_s" in step["results"]:
            lines += ["", f"bf16 / fp32 img/s = {step['results']['bf16_over_fp32_img_per_s']:.2f}"]
    step = section("fashion")
    if step and step["results"].get("trials"):
        lines += [f"Real Fashion-MNIST, `bench run --dataset fashion-mnist --methods standard,coteaching --seeds 1 "
                  f"{' '.join(step['results']['command_args'])}`:", ""]
        lines += md_table(["method", "state", "epochs", "s per epoch", "last test acc", "hours for the full recipe"],
                          [[t["method"], t["state"], fmt(t["epochs"], "d"),
                            ", ".join(fmt(s, ".1f") for s in t["epoch_seconds"]),
                            fmt(t["test_acc_last_epoch"], ".3f"), fmt(t.get("hours_for_full_recipe"), ".2f")]
                           for t in step["results"]["trials"]])
        lines.append("")
    for name in ("trainer", "resume"):
        step = section(name)
        if step and step["results"].get("trials"):
            r = step["results"]
            lines += [f"{r.get('data', '')}; `--noise sym:0.4 --seeds 1 --epochs 3`."
                      + (f"  Killed after {r['killed_after_epochs']} epoch(s), then rerun." if name == "resume" else ""),
                      ""]
            lines += md_table(["method", "state", "epochs (budget)", "trial s", "s per epoch", "last test acc",
                               "resumed from"],
                              [[t["method"], t["state"], f"{t['epochs']} ({fmt(t['epoch_budget'], 'd')})",
                                fmt(t["seconds"], ".1f"),
                                ", ".join(fmt(s, ".1f") for s in t["epoch_seconds"]),
                                fmt(t["test_acc_last_epoch"], ".3f"), fmt(t["resumed_from"], "d")]
                               for t in r["trials"]])
            if r.get("table"):
                lines += ["", "`bench table`:", "", r["table"]]
            if r.get("verify"):
                lines += ["", "`bench verify`: " + r["verify"].splitlines()[-1]]
    failures = [s for s in report["steps"] if s["status"] != "ok"]
    if failures:
        lines += ["", "## Failures", ""]
        for s in failures:
            lines += [f"### {s['title']}: {s['status']}", ""] + [f"- {p}" for p in s["problems"]]
            for c in s["commands"]:
                if c.get("tail"):
                    lines += ["", f"`{c['command']}` (exit {c['returncode']}, {fmt(c['seconds'], '.1f')} s):", "",
                              "```", c["tail"], "```"]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def memory_text(memory: dict | None) -> str:
    if not memory:
        return "-"
    parts = []
    if memory.get("peak_process_rss_mib"):
        parts.append(f"host RSS {memory['peak_process_rss_mib']:,.0f} MiB (largest process)")
    if memory.get("peak_group_rss_mib") and round(memory["peak_group_rss_mib"]) != round(memory.get("peak_process_rss_mib") or 0):
        parts.append(f"{memory['peak_group_rss_mib']:,.0f} MiB (all its processes)")
    if memory.get("gpu_used_mib_peak") is not None:
        parts.append(f"GPU in use {memory['gpu_used_mib_peak']:,.0f} MiB at peak "
                     f"(nvidia-smi, {fmt(memory.get('gpu_used_mib_before'), ',.0f')} MiB before)")
    return ", ".join(parts) or "-"
