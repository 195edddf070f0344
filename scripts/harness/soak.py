"""The soak (`scripts/harness.sh --soak MINUTES`): every scenario again and again, each cycle in
a new random order, each run with new random timing (its own seed), until MINUTES have passed;
then one table of what was injected and what happened to the accepted messages.

Each scenario run is the ordinary one (scenarios.py, survival.py: its own store, load, faults,
convergence, every check of verify.py); this module only chooses the order and the seeds,
adds up the results and classifies the faults the scenarios counted:

  - process-level faults: kill -9, pause (SIGSTOP), restart (SIGTERM), partition (links cut,
    lane isolated), cloud outage (database or function down), disk loss (outbox deleted or
    replaced by an old copy);
  - chunk-level faults of the fault proxies, apart: TCP chunk stalls/drops/resets and HTTP
    fails/lost answers/stalls/hangs/cuts;
  - other injected events (poison messages, a late joiner; kinds a scenario added that this
    table does not know) are listed under "other".

A run stops at the first scenario with a violation (unless --soak-keep-going): its work folder,
with every lane log and outbox, is kept and named. Folders of passing runs are deleted as the
soak goes (unless --keep), so an hour does not fill the disk.
"""
import os
import random
import shutil
import time

from lanes import log

PROCESS = {"kill -9": "kill -9", "lane dead": "kill -9", "SIGSTOP": "pause",
           "SIGTERM": "restart", "link cut": "partition", "lane isolated": "partition",
           "db down": "cloud outage", "function down": "cloud outage",
           "disk lost": "disk loss", "old outbox restored": "disk loss"}
PROCESS_ORDER = ["kill -9", "pause", "restart", "partition", "cloud outage", "disk loss"]


def classify(kind):
    """('process', class) for a process-level fault, ('chunk', kind) for a proxy's chunk- or
    request-level fault, ('other', kind) for anything else."""
    if kind in PROCESS:
        return "process", PROCESS[kind]
    if kind.startswith(("chunk ", "http ")):
        return "chunk", kind
    return "other", kind


def run_seed(seed, n):
    """The seed of the soak's n-th scenario run (1, 2, ...): its own store id in the shared
    cloud, its own random timing; that run is replayed with
    `scripts/harness.sh --quick --seed <it> --scenario NAME`."""
    return seed * 10000 + n


def run(opts, root, cloud, run_scenario, results):
    """Runs the soak, appending each scenario run's result to `results` (so an interrupted
    soak still reports what ran). `run_scenario(name, opts, root, cloud)` is the driver's;
    opts.seed is set to the cycle's seed for each call and restored afterwards."""
    base_seed = opts.seed
    order_rng = random.Random(f"{base_seed}:soak")
    end = time.monotonic() + opts.soak * 60
    cycle = 0
    try:
        while time.monotonic() < end:
            cycle += 1
            names = list(opts.names) + [n for n in opts.soak_extra if n in opts.names]
            order_rng.shuffle(names)
            log(f"=== soak cycle {cycle}: {', '.join(names)}; "
                f"{(end - time.monotonic()) / 60:.1f} min left ===")
            for name in names:
                if time.monotonic() >= end:
                    break
                opts.seed = run_seed(base_seed, len(results) + 1)
                r = run_scenario(name, opts, root, cloud)
                r["cycle"] = cycle
                r["load"] = os.getloadavg()[0]
                results.append(r)
                if r["result"] == "INTERRUPTED":
                    raise KeyboardInterrupt("signal")
                failed = r["result"] not in ("PASS", "SKIP")
                if not failed and not opts.keep:
                    shutil.rmtree(r["folder"], ignore_errors=True)
                if failed and not opts.soak_keep_going:
                    log(f"soak: {name} of cycle {cycle} failed; stopping (its folder is kept: "
                        f"{r['folder']})")
                    return
    finally:
        opts.seed = base_seed


def totals(results, elapsed):
    """The sums of the table over `results` (the soak's scenario runs)."""
    loads = [r["load"] for r in results if "load" in r]
    t = {"cycles": max((r.get("cycle", 0) for r in results), default=0), "elapsed_s": elapsed,
         "runs": len(results),
         "passed": sum(1 for r in results if r["result"] == "PASS"),
         "skipped": sum(1 for r in results if r["result"] == "SKIP"),
         "process": {k: 0 for k in PROCESS_ORDER}, "chunk": {}, "other": {},
         "accepted": 0, "lost_after_peer_ack": 0, "lost_pending": 0, "cloud_duplicates": None,
         "violations": sum(len(r["violations"]) for r in results
                           if r["result"] not in ("SKIP", "INTERRUPTED")),
         "load_avg": sum(loads) / len(loads) if loads else None,
         "load_max": max(loads) if loads else None, "per_scenario": {}}
    for r in results:
        if r["result"] == "SKIP":
            continue
        for kind, n in r["faults"].items():
            cls, key = classify(kind)
            t[cls][key] = t[cls].get(key, 0) + n
        a = r.get("accounting") or {}
        t["accepted"] += a.get("accepted") or 0
        t["lost_after_peer_ack"] += a.get("lost_after_peer_ack") or 0
        t["lost_pending"] += a.get("lost_pending") or 0
        d = r["metrics"].get("cloud_duplicates")
        if d is not None:
            t["cloud_duplicates"] = (t["cloud_duplicates"] or 0) + d
        s = t["per_scenario"].setdefault(r["name"], {"runs": 0, "passed": 0, "accepted": 0,
                                                     "process": 0, "chunk": 0,
                                                     "max_converged_s": 0.0})
        s["runs"] += 1
        s["passed"] += r["result"] == "PASS"
        s["accepted"] += a.get("accepted") or 0
        for kind, n in r["faults"].items():
            cls, _ = classify(kind)
            if cls in ("process", "chunk"):
                s[cls] += n
        conv = r["metrics"].get("convergence_s")
        if conv is not None:
            s["max_converged_s"] = max(s["max_converged_s"], conv)
    return t


def report(t, opts, table):
    """The soak's summary (stdout): the fault and message table, then one line per scenario.
    `table(head, rows)` is the driver's Markdown table printer."""
    proc_total = sum(t["process"].values())
    load = "-" if t["load_avg"] is None else f"{t['load_avg']:.1f} (max {t['load_max']:.1f})"
    out = [f"lanesync soak: seed {opts.seed}, {t['elapsed_s'] / 60:.1f} min, {t['cycles']} "
           f"cycles, {t['runs']} scenario runs ({t['passed']} PASS, {t['skipped']} SKIP), "
           f"{opts.lanes} lanes, {opts.messages} messages/lane per run, 1-min load average "
           f"at the end of each run: {load}"]
    rows = [[f"process faults: {k}", str(v), ""] for k, v in t["process"].items()]
    rows.append(["process faults, total", str(proc_total), f">= {opts.soak_min_faults}"
                 if opts.soak_min_faults else ""])
    rows += [[f"proxy chunk-level faults: {k}", str(v), ""] for k, v in sorted(t["chunk"].items())]
    rows.append(["proxy chunk-level faults, total", str(sum(t["chunk"].values())), ""])
    rows += [[f"other injected: {k}", str(v), ""] for k, v in sorted(t["other"].items())]
    dup = "-" if t["cloud_duplicates"] is None else str(t["cloud_duplicates"])
    rows += [["messages accepted", str(t["accepted"]), ""],
             ["peer_ack'd messages lost", str(t["lost_after_peer_ack"]), "0"],
             ["pending-only messages lost with a destroyed disk (expected)",
              str(t["lost_pending"]), ""],
             ["duplicates in the cloud", dup, "0"],
             ["violations (every check of every run)", str(t["violations"]), "0"]]
    out.append(table(["", "count", "must be"], rows))
    out.append("")
    srows = [[n, str(s["runs"]), str(s["passed"]), str(s["accepted"]), str(s["process"]),
              str(s["chunk"]), f"{s['max_converged_s']:.1f}s"]
             for n, s in t["per_scenario"].items()]
    out.append(table(["scenario", "runs", "pass", "accepted", "process faults", "chunk faults",
                      "max converged"], srows))
    return "\n".join(out)


def failed(t, opts):
    """Why the soak fails as a whole (empty: it passed): a must-be-0 count, a violation, or
    fewer process-level faults than --soak-min-faults asked for."""
    why = []
    if t["lost_after_peer_ack"]:
        why.append(f"{t['lost_after_peer_ack']} peer_ack'd messages lost")
    if t["cloud_duplicates"]:
        why.append(f"{t['cloud_duplicates']} duplicates in the cloud")
    if t["violations"]:
        why.append(f"{t['violations']} violations")
    n = sum(t["process"].values())
    if opts.soak_min_faults and n < opts.soak_min_faults:
        why.append(f"only {n} process-level faults (--soak-min-faults {opts.soak_min_faults})")
    return why
