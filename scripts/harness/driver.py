#!/usr/bin/env python3
"""lanesync multi-terminal integration harness: N lanes + the local cloud, load, faults,
exactly-once verification. Run through scripts/harness.sh; see docs/harness.md."""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import lanes  # noqa: E402
from lanes import REPO, Cloud, Deadline, Monitor, free_port, log  # noqa: E402
from scenarios import SCENARIOS, Context, Skip  # noqa: E402
import soak  # noqa: E402
import verify  # noqa: E402

QUICK = dict(messages=400, rate=50.0, clients=4, payload=200, deadline=90.0)
LONG = dict(messages=3000, rate=100.0, clients=8, payload=512, deadline=300.0)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="scripts/harness.sh",
        description="Starts a local cloud and N lane agents, drives load through the local "
                    "API, injects the named faults, waits for convergence and verifies that "
                    "every accepted message reached pos_messages exactly once, in order, "
                    "with its data; that every lane's own messages are cloud_ack (poison: "
                    "failed) and every lane holds every other lane's messages. Prints a "
                    "summary table; exits 1 naming each violation.",
        epilog="Scenarios: " + ", ".join(SCENARIOS) + " (default: all). "
               "Exit status: 0 every check passed, 1 a violation or harness failure, "
               "2 usage error. See docs/harness.md.")
    p.add_argument("--lanes", type=int, default=3, metavar="N", help="lanes per store (default 3)")
    p.add_argument("--messages", type=int, metavar="K",
                   help=f"messages per lane (default {QUICK['messages']} with --quick, "
                        f"{LONG['messages']} without)")
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="run this scenario; repeat or use commas for several; 'all' = every one")
    p.add_argument("--seed", type=int, help="makes every random choice reproducible "
                                            "(default: random, printed)")
    p.add_argument("--quick", action="store_true",
                   help="short forms (what CI runs): fewer messages, shorter faults")
    p.add_argument("--rate", type=float, metavar="R",
                   help="messages per second per lane, 0 = as fast as the clients can "
                        f"(default {QUICK['rate']:g} / {LONG['rate']:g})")
    p.add_argument("--payload", type=int, metavar="BYTES",
                   help=f"approximate size of each message's data (default {QUICK['payload']} "
                        f"/ {LONG['payload']})")
    p.add_argument("--clients", type=int, metavar="C",
                   help=f"concurrent POS clients per lane (default {QUICK['clients']} / "
                        f"{LONG['clients']})")
    p.add_argument("--deadline", type=float, metavar="SECS",
                   help="convergence deadline per scenario (default 90 / 300)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work folder (env files, logs, outboxes, cloud) even on success")
    p.add_argument("--work-dir", metavar="DIR", help="where to create the work folder "
                                                     "(default: $TMPDIR)")
    p.add_argument("--bin", metavar="PATH",
                   default=os.environ.get("LANESYNC_BIN") or os.path.join(REPO, "build", "lanesync"),
                   help="the lanesync binary (default: $LANESYNC_BIN or build/lanesync)")
    p.add_argument("--quorum", type=int, default=1, metavar="Q",
                   help="PEER_ACK_QUORUM of every lane (default 1; at most lanes - 1)")
    p.add_argument("--failover", action="store_true",
                   help="POS clients retry a publish their lane did not answer on another "
                        "lane, with the same idempotency key (off: they wait for their lane)")
    p.add_argument("--no-cloud", action="store_true",
                   help="peer-only: no cloud, messages end at peer_ack; cloud scenarios are "
                        "skipped")
    p.add_argument("--log-level", default="info", help="LOG_LEVEL of the lanes (default info)")
    p.add_argument("--soak", type=float, metavar="MINUTES",
                   help="soak: run the scenarios (the quick forms) again and again, each cycle "
                        "in a new order with a new seed, for MINUTES; prints the fault table")
    p.add_argument("--soak-extra", default="", metavar="NAME,...",
                   help="with --soak: scenarios run twice per cycle (more faults per minute)")
    p.add_argument("--soak-min-faults", type=int, default=0, metavar="N",
                   help="with --soak: fail unless at least N process-level faults were injected")
    p.add_argument("--soak-keep-going", action="store_true",
                   help="with --soak: go on after a scenario with a violation (default: stop)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="more progress output")
    a = p.parse_args(argv)
    if a.soak is not None:
        if a.soak <= 0:
            p.error("--soak MINUTES must be > 0")
        a.quick = True      # the soak cycles the short forms: their fault cadence
    base = QUICK if a.quick else LONG
    for k, v in base.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    names = []
    for s in a.scenario or ["all"]:
        for n in s.split(","):
            n = n.strip()
            if not n:
                continue
            if n == "all":
                names.extend(x for x in SCENARIOS if x not in names)
            elif n not in SCENARIOS:
                p.error(f"unknown scenario {n!r}; known: {', '.join(SCENARIOS)}")
            elif n not in names:
                names.append(n)
    a.names = names
    a.soak_extra = [n.strip() for n in a.soak_extra.split(",") if n.strip()]
    bad = [n for n in a.soak_extra if n not in SCENARIOS]
    if bad:
        p.error(f"--soak-extra: unknown scenario {bad[0]!r}")
    if a.lanes < 2 or a.lanes > 32:
        p.error("--lanes must be 2..32 (a store with peers)")
    if not 1 <= a.quorum < a.lanes:
        p.error("--quorum must be 1 .. lanes - 1")
    if a.messages < 1 or a.clients < 1 or a.payload < 0 or a.rate < 0 or a.deadline <= 0:
        p.error("--messages and --clients must be >= 1, --payload/--rate >= 0, --deadline > 0")
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 10 ** 6)
    return a


def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v / 1000:.1f}s" if v >= 10000 else f"{v:.0f}ms"


def summary_table(results):
    head = ["scenario", "lanes", "accepted", "dups 200", "faults", "peer_ack p50/p99",
            "cloud_ack p50/p99", "converged", "result"]
    rows = []
    for r in results:
        m = r["metrics"]
        conv = m.get("convergence_s")
        rows.append([
            r["name"], str(r["lanes"]), str(r["accepted"]), str(r["dups"]),
            str(sum(r["faults"].values())),
            f"{fmt_ms(m.get('peer_p50'))} / {fmt_ms(m.get('peer_p99'))}",
            f"{fmt_ms(m.get('cloud_p50'))} / {fmt_ms(m.get('cloud_p99'))}",
            "-" if conv is None else f"{conv:.1f}s",
            r["result"]])
    return _table(head, rows)


def accounting_table(results):
    """Per scenario: what happened to the accepted messages (see docs/harness.md, "Loss
    accounting")."""
    head = ["scenario", "accepted", "seen peer_ack", "in cloud once", "lost (pending only)",
            "lost after peer_ack"]
    rows = []
    for r in results:
        a = r.get("accounting") or {}
        once = a.get("in_cloud_once")
        rows.append([r["name"], str(a.get("accepted", "-")), str(a.get("peer_ack_seen", "-")),
                     "-" if once is None else str(once),
                     str(a.get("lost_pending", "-")), str(a.get("lost_after_peer_ack", "-"))])
    return _table(head, rows)


def _table(head, rows):
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def run_scenario(name, opts, root, cloud):
    ctx = Context(name, opts, opts.seed, root, cloud, opts.bin)
    log(f"=== {name} (seed {opts.seed}, store {ctx.store_id}) ===")
    t_start = time.monotonic()
    mon = Monitor(ctx.lanes)
    result = "PASS"
    interrupted = False
    try:
        SCENARIOS[name](ctx)
        ctx.restore()
        log("  waiting for convergence")
        conv, miss = verify.wait_converged(ctx, opts.deadline)
        ctx.metrics["convergence_s"] = conv
        if conv is None:
            ctx.violations.append(f"did not converge within {opts.deadline:.0f}s; still missing: "
                                  + "; ".join(miss[:12])
                                  + (f" (+{len(miss) - 12} more)" if len(miss) > 12 else ""))
            ctx.violations.extend(diagnose(ctx))
        else:
            log(f"  converged in {conv:.1f}s")
        if ctx.after_converge:
            ctx.after_converge()
        verify.account_losses(ctx)
        sts = {lane.id: lane.status() for lane in ctx.lanes}
        verify.check(ctx, sts)
    except Skip as e:
        result = "SKIP"
        ctx.notes.append(f"skipped: {e}")
    except KeyboardInterrupt:
        interrupted = True
        result = "INTERRUPTED"
    except Deadline as e:
        ctx.violations.append(f"harness wait failed: {e}")
    except Exception:  # noqa: BLE001
        ctx.violations.append("harness error:\n" + traceback.format_exc())
    finally:
        # Stop the lanes: a clean SIGTERM stop (exit 0) is part of the contract.
        for lane in ctx.lanes:
            if interrupted:
                lane.cleanup()
                continue
            was_running = lane.running()
            rc = lane.terminate(timeout=20)
            if was_running and rc != 0:
                ctx.violations.append(f"{lane.id}: exit code {rc} on the final SIGTERM "
                                      "(expected 0; None = did not stop within 20 s)")
        mon.close()
        ctx.close()
        if ctx.cloud_down and cloud is not None and not interrupted:
            try:
                cloud.up()
            except Exception as e:  # noqa: BLE001
                ctx.violations.append(f"cloud-up.sh after the scenario failed: {e}")
    if not interrupted and result != "SKIP":
        for lane in ctx.lanes:
            if lane.starts:
                rc, out = lane.check_db()
                if rc != 0:
                    ctx.violations.append(f"{lane.id}: lanesync check-db exited {rc}: {out[-300:]}")
    ctx.violations.extend(ctx.ledger.violations)
    if ctx.violations and result not in ("SKIP", "INTERRUPTED"):
        result = f"FAIL ({len(ctx.violations)})"
    elapsed = time.monotonic() - t_start
    log(f"=== {name}: {result} in {elapsed:.0f}s ===")
    return {
        "name": name, "seed": opts.seed, "store_id": ctx.store_id, "lanes": len(ctx.lanes),
        "accepted": ctx.ledger.count() + len(ctx.ledger.lost), "dups": ctx.ledger.dups_suppressed,
        "conflicts_409": ctx.ledger.conflicts_refused, "retried_publishes": ctx.ledger.retries,
        "ambiguous": dict(ctx.ledger.ambiguous), "faults": ctx.faults,
        "metrics": ctx.metrics, "notes": ctx.notes, "violations": ctx.violations,
        "accounting": verify.accounting(ctx),
        "result": result, "elapsed_s": round(elapsed, 1), "folder": ctx.folder,
    }


def diagnose(ctx):
    """When convergence fails: each lane's peers/cloud view and its last warnings."""
    out = []
    for lane in ctx.lanes:
        try:
            st = lane.status(timeout=3)
            peers = ", ".join(f"{p.get('terminal_id')}:{'up' if p.get('connected') else 'down'}"
                              f"@{p.get('acked_through_seq')}" for p in st.get("peers", []))
            c = st.get("cloud", {})
            out.append(f"  {lane.id}: outbox {st['outbox']} replicas {st.get('replicas')} "
                       f"peers [{peers}] cloud last_error={c.get('last_error')!r} "
                       f"next_attempt_at={c.get('next_attempt_at')}")
        except Exception as e:  # noqa: BLE001
            out.append(f"  {lane.id}: status unreachable: {e}")
        warn = lane.log_lines(" warn ", " error ", limit=5)
        if warn:
            out.append(f"  {lane.id} log ({lane.log_path}), last warnings:\n    "
                       + "\n    ".join(warn))
    return out


def main(argv):
    opts = parse_args(argv)
    lanes.VERBOSE = opts.verbose
    if opts.list:
        for n, fn in SCENARIOS.items():
            print(f"{n:16} {' '.join((fn.__doc__ or '').split())}")
        return 0
    if not os.access(opts.bin, os.X_OK):
        print(f"harness: {opts.bin} is not an executable lanesync binary (run scripts/build.sh, "
              "or pass --bin / LANESYNC_BIN)", file=sys.stderr)
        return 2
    opts.bin = os.path.abspath(opts.bin)
    base = opts.work_dir or None
    if base:
        os.makedirs(base, exist_ok=True)
    root = tempfile.mkdtemp(prefix="lanesync-harness-", dir=base)
    os.chmod(root, 0o711)   # PostgreSQL runs as the postgres user and must enter CLOUD_DIR
    log(f"harness: seed {opts.seed}, work folder {root}, scenarios {', '.join(opts.names)}, "
        f"{'quick' if opts.quick else 'long'} form: {opts.lanes} lanes, {opts.messages} "
        f"messages/lane at {opts.rate:g}/s, {opts.clients} clients, {opts.payload} B payload")

    signalled = []

    def on_signal(signum, frame):
        # The first signal interrupts; later ones must not break the clean-up it started.
        # (Lanes also die with the harness through PR_SET_PDEATHSIG, whatever happens.)
        if signalled:
            log(f"signal {signum}: already stopping")
            return
        signalled.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    cloud = None
    results = []
    t_run = time.monotonic()
    ok = False
    interrupted = False
    watchdog = None
    try:
        if not opts.no_cloud:
            cloud = Cloud(os.path.join(root, "cloud"), free_port(), free_port())
            # The lanes die with the harness (PR_SET_PDEATHSIG); the cloud's processes are
            # daemons. This watchdog, in its own session, stops the cloud if the harness dies
            # without saying "done" (SIGKILL, a CI timeout killing the process group).
            watchdog = subprocess.Popen(
                ["bash", "-c", 'read -r word; [ "$word" = done ] || '
                 'CLOUD_DIR="$1" "$2" >/dev/null 2>&1', "harness-watchdog", cloud.dir,
                 os.path.join(REPO, "scripts", "cloud-down.sh")],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            log(f"starting the local cloud (API :{cloud.api_port}, DB :{cloud.db_port})")
            t = time.monotonic()
            cloud.up()
            log(f"cloud up in {time.monotonic() - t:.1f}s: {cloud.url}")
        if opts.soak is not None:
            soak.run(opts, root, cloud, run_scenario, results)
        else:
            for name in opts.names:
                results.append(run_scenario(name, opts, root, cloud))
                if results[-1]["result"] == "INTERRUPTED":
                    raise KeyboardInterrupt("signal")
        ok = all(r["result"] in ("PASS", "SKIP") for r in results)
    except KeyboardInterrupt as e:
        interrupted = True
        log(f"interrupted ({e}); stopping everything")
    except Exception:  # noqa: BLE001
        log("harness error:\n" + traceback.format_exc())
    finally:
        if cloud is not None and cloud.started:
            try:
                cloud.down()
            except Exception as e:  # noqa: BLE001
                log(f"cloud-down.sh failed: {e}")
        if watchdog is not None:
            try:
                watchdog.communicate(b"done\n", timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                watchdog.kill()
        with open(os.path.join(root, "summary.json"), "w") as f:
            json.dump({"seed": opts.seed, "argv": argv, "results": results}, f, indent=2,
                      default=str)

    if opts.soak is not None:
        return soak_summary(opts, root, results, time.monotonic() - t_run, ok, interrupted)
    print()
    print(f"lanesync harness: seed {opts.seed}, {'quick' if opts.quick else 'long'} form, "
          f"{opts.lanes} lanes (quorum {opts.quorum}), {opts.messages} messages/lane"
          + ("" if cloud else " (peer-only, no cloud)"))
    print(summary_table(results))
    if results:
        print()
        print(accounting_table(results))
    for r in results:
        extra = []
        if r["faults"]:
            extra.append("faults: " + ", ".join(f"{k} x{v}" for k, v in r["faults"].items()))
        if r["conflicts_409"]:
            extra.append(f"409 for same id/other data: {r['conflicts_409']}")
        if r["retried_publishes"]:
            extra.append(f"publish attempts retried: {r['retried_publishes']}")
        extra.extend(r["notes"])
        if extra:
            print(f"  {r['name']}: " + "; ".join(extra))
    print_violations(results)
    print(f"\nreproduce: {reproduce(opts)}")
    keep = opts.keep or not ok or interrupted
    if keep:
        print(f"work folder kept (env files, lane logs, outboxes, cloud logs): {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    if interrupted:
        return 130
    return 0 if ok else 1


def print_violations(results):
    bad = [r for r in results if r["violations"] and r["result"] not in ("SKIP", "INTERRUPTED")]
    if bad:
        print("\nVIOLATIONS")
        for r in bad:
            for v in r["violations"]:
                print(f"  [{r['name']}{' cycle %d' % r['cycle'] if 'cycle' in r else ''}] {v}")


def soak_summary(opts, root, results, elapsed, ok, interrupted):
    """--soak: the fault table, the violations, how to replay a failed run; the exit code."""
    totals = soak.totals(results, elapsed)
    print()
    print(soak.report(totals, opts, _table))
    print_violations(results)
    for r in results:
        if r["result"] not in ("PASS", "SKIP"):
            print(f"  replay: scripts/harness.sh --quick --seed {r['seed']} --scenario {r['name']}"
                  f"{' --failover' if opts.failover else ''}; folder {r['folder']}")
    why = soak.failed(totals, opts)
    if why:
        print("\nSOAK FAILED: " + "; ".join(why))
    keep = opts.keep or not ok or interrupted or bool(why)
    if keep:
        print(f"work folder kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    if interrupted:
        return 130
    return 0 if ok and not why else 1


def reproduce(opts):
    return (f"scripts/harness.sh --seed {opts.seed}"
             + (" --quick" if opts.quick else "")
             + "".join(f" --scenario {n}" for n in opts.names)
             + (f" --lanes {opts.lanes}" if opts.lanes != 3 else "")
             + (f" --quorum {opts.quorum}" if opts.quorum != 1 else "")
             + (" --failover" if opts.failover else "")
             + "".join(f" --{k} {getattr(opts, k):g}" for k in ("messages", "rate", "payload",
                                                                  "clients")
                       if getattr(opts, k) != (QUICK if opts.quick else LONG)[k]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
