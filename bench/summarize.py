"""Summarize ssebench JSON reports as Markdown tables with medians.

    summarize.py ticker [--labels=A,B[,C...]] A1.json A2.json ... [-- B1.json ...] -- REF1.json ...
        one table per server (labels default to ssehub and the FastAPI
        seed), the medians side by side with the ratios of each server to
        the last one (the reference), and the CPU and RSS/connection ratios
        of each pair of runs i (run i of both in the same round).
    summarize.py hub R1.json R2.json ...
        one row per run of a hub scenario (idle, fanout, sustained,
        publish) and the medians.
    summarize.py servers [--base=gosse] DIR/LABEL-RUN.json ...
        the same scenario against several servers, named by the files
        (ssehub-default-1.json is run 1 of "ssehub-default"): a table per
        server, then the medians side by side with the ratio of each
        server to the base server, and the CPU ratio of each run i.
    summarize.py nats OUT RUNS EVENTS ["publish fanout replay"]
        bench/nats.sh's reports (OUT/<scenario>/<broker>-<round>.json) of
        the scenarios named: the medians of the memory and NATS brokers
        against issue 10's targets.

A run that was cut short (its report says "aborted", or ssebench left it
empty or cut off) shows in its table but is left out of the medians and
the ratios. A run that completed but
lost events (its report says "failed"; ssebench exited 3) is a run of a
server that lost events: it stays in the medians, where "delivered" shows
the loss, and is named under the table.

Tests: python3 -m unittest discover -s bench -p summarize_test.py
"""

import json
import os
import re
import statistics
import sys

KIB = 1024
MIB = 1024 * 1024


def load(paths):
    return [read_report(p) for p in paths]


def read_file(path):
    with open(path) as f:
        return f.read()


def read_report(path):
    """The report at path. A file ssebench left empty or cut off (it was
    killed, or refused its flags) is a run cut short: an aborted report
    without figures."""
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        return {"aborted": f"no report ({e})"}


def ticker_row(r):
    if "server" not in r:  # no report: its reason alone
        return mark({}, r)
    s, d, c = r["server"], r["delivery"], r["connect"]
    row = {
        "delivered": f'{d["delivered"]}/{d["expected"]}',
        "connect_failed": c["failed"],
        "cpu_s": s["cpu_seconds"],
        "rss_idle_mib": s["rss_idle_bytes"] / MIB,
        "rss_peak_mib": s["rss_peak_bytes"] / MIB,
        "rss_per_conn_kib": s["rss_per_conn_bytes"] / KIB,
        "client_cpu_s": r["client"]["cpu_seconds"],
    }
    return mark(row, r)


def mark(row, r):
    """Adds a report's aborted and failed reasons to its row, and returns it."""
    for k in ("aborted", "failed"):
        if r.get(k):
            row[k] = r[k]
    return row


def hub_row(r):
    if "server" not in r:  # no report: its reason alone
        return mark({}, r)
    s = r["server"]
    row = {"scenario": r["scenario"]}
    if r.get("connect"):
        c = r["connect"]
        row["connected"] = f'{c["connected"]}/{c["attempted"]}'
        row["connect_p50_ms"] = c["time"]["p50_ms"]
        row["connect_p99_ms"] = c["time"]["p99_ms"]
        row["connect_wall_ms"] = c["wall_ms"]
    if r.get("delivery") and r["delivery"]["expected"]:
        d = r["delivery"]
        row["delivered"] = f'{d["delivered"]}/{d["expected"]}'
        row["delivered_pct"] = 100 * d["delivered"] / d["expected"]
        row["dup"] = d["duplicates"]
        row["ooo"] = d["out_of_order"]
        row["dropped"] = d["dropped_streams"]
        lat = d.get("latency") or {}
        for q in ("p50", "p90", "p99", "max"):
            row[f"lat_{q}_ms"] = lat.get(f"{q}_ms")
    if r.get("publish"):
        p = r["publish"]
        row["published_ok"] = p["ok"]
        row["publish_failed"] = p["failed"]
        row["publish_per_s"] = p["per_second"]
        row["publish_p99_ms"] = p["latency"]["p99_ms"]
    if r.get("idle"):
        i = r["idle"]
        row["goroutines_idle"] = s["goroutines_idle"]
        row["goroutines_held"] = i["goroutines_held"]
        row["settle_goroutines_ms"] = settle(i["settle_goroutines_ms"])
        row["settle_rss_ms"] = settle(i["settle_rss_ms"])
        row["rss_after_mib"] = i["rss_after_bytes"] / MIB
    row["cpu_s"] = s["cpu_seconds"]
    row["rss_idle_mib"] = s["rss_idle_bytes"] / MIB
    row["rss_peak_mib"] = s["rss_peak_bytes"] / MIB
    if s["rss_per_conn_bytes"]:
        row["rss_per_conn_kib"] = s["rss_per_conn_bytes"] / KIB
    row["client_cpu_s"] = r["client"]["cpu_seconds"]
    return mark(row, r)


def settle(ms):
    """A settle time; ssebench's -1, "not within -settle", is later than any."""
    return NEVER if ms < 0 else ms


NEVER = float("inf")


def fmt(v):
    if v == NEVER:
        return "never"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return "" if v is None else str(v)


def median(rows, key):
    """The median of key over rows, leaving out the -1 (and the -1 / MIB) that
    ssebench writes for a figure it could not read."""
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and r[key] >= 0]
    return statistics.median(vals) if vals else None


def table(label, rows):
    """A row per run, with a column for every key any run has, and the
    medians of the runs that were not aborted."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join([label] + keys) + " |")
    print("|" + "---|" * (len(keys) + 1))
    for i, r in enumerate(rows, 1):
        print("| " + " | ".join([f"run {i}"] + [fmt(r.get(k)) for k in keys]) + " |")
    complete = [r for r in rows if not r.get("aborted")]
    print("| " + " | ".join(["**median**"] + [fmt(median(complete, k)) for k in keys]) + " |")


def ticker(paths, labels=("ssehub", "FastAPI seed")):
    """Groups of runs separated by "--"; the last group is the reference."""
    groups, cur = [], []
    for p in paths:
        if p == "--":
            groups.append(cur)
            cur = []
        else:
            cur.append(p)
    groups.append(cur)
    if len(groups) < 2 or not all(groups):
        sys.exit("ticker: want A1.json ... -- [B1.json ... --] REF1.json ...")
    if len(labels) != len(groups):
        sys.exit(f"ticker: {len(groups)} groups of reports but {len(labels)} labels")
    rows = [[ticker_row(r) for r in load(g)] for g in groups]
    for label, rs in zip(labels, rows):
        print(f"{label}:\n")
        table(label, rs)
        print()
    # An aborted run's figures are a part of a run's: its table shows it,
    # the medians and the ratios leave it out. Its place stays, as None,
    # so that run i of each group still pairs with run i of the others.
    for label, rs in zip(labels, rows):
        for i, r in enumerate(rs):
            if r.get("failed"):
                print(f"- lost events: {label} run {i + 1}: {r['failed']}")
            if r.get("aborted"):
                print(f"- left out: {label} run {i + 1}, aborted: {r['aborted']}")
                rs[i] = None
    if any(r is None or r.get("failed") for rs in rows for r in rs):
        print()
    complete = [[r for r in rs if r is not None] for rs in rows]
    ref, lref = rows[-1], labels[-1]
    others = list(zip(labels[:-1], rows[:-1]))
    keys = ("cpu_s", "rss_per_conn_kib", "rss_peak_mib", "client_cpu_s")
    head = ["median"] + list(labels) + [f"{la} / {lref}" for la, _ in others]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for k in keys:
        meds = [median(rs, k) for rs in complete]
        mref = meds[-1]
        cells = [k] + [fmt(m) for m in meds]
        cells += [f"{m / mref:.2f}" if m is not None and mref else "" for m in meds[:-1]]
        print("| " + " | ".join(cells) + " |")
    print()
    for la, rs in others:
        print(f"ratio {la} / {lref} (medians):\n")
        for k in ("cpu_s", "rss_per_conn_kib", "rss_peak_mib"):
            ma, mb = median([r for r in rs if r], k), median(complete[-1], k)
            ratio = f"{ma / mb:.2f}" if ma is not None and mb else "-"
            print(f"- {k}: {fmt(ma)} / {fmt(mb)} = {ratio}")
        if len(rs) == len(ref):
            # Run i of each ran in the same round: their ratio is less
            # exposed to the machine's speed drifting during the session.
            for k in ("cpu_s", "rss_per_conn_kib"):
                # A round is left out where a figure is unknown (-1) or
                # the reference's is 0.
                pairs = [x[k] / y[k] for x, y in zip(rs, ref) if x and y and x[k] >= 0 and y[k] > 0]
                if not pairs:
                    continue
                print(
                    f"- {k}, round by round: {', '.join(f'{p:.2f}' for p in pairs)};"
                    f" median {statistics.median(pairs):.2f}"
                )
        print()


def server_cpu(r):
    return r["server"]["cpu_seconds"]


# The side-by-side rows: label, how to read it off a report.
SIDE_BY_SIDE = [
    ("delivered %", lambda r: 100 * r["delivery"]["delivered"] / r["delivery"]["expected"]),
    ("out of order", lambda r: r["delivery"]["out_of_order"]),
    ("dropped streams", lambda r: r["delivery"]["dropped_streams"]),
    ("latency p50 ms", lambda r: r["delivery"]["latency"]["p50_ms"]),
    ("latency p99 ms", lambda r: r["delivery"]["latency"]["p99_ms"]),
    ("latency max ms", lambda r: r["delivery"]["latency"]["max_ms"]),
    ("publish p99 ms", lambda r: r["publish"]["latency"]["p99_ms"]),
    ("connect p99 ms", lambda r: r["connect"]["time"]["p99_ms"]),
    ("server CPU s", server_cpu),
    ("RSS peak MiB", lambda r: r["server"]["rss_peak_bytes"] / MIB),
    ("RSS / subscriber KB", lambda r: r["server"]["rss_per_conn_bytes"] / 1000),
    ("RSS / subscriber KiB", lambda r: r["server"]["rss_per_conn_bytes"] / KIB),
    ("goroutines peak", lambda r: r["server"]["goroutines_peak"]),
    ("ssebench CPU s", lambda r: r["client"]["cpu_seconds"]),
]


def value(read, r):
    try:
        v = read(r)
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    return None if isinstance(v, (int, float)) and v < 0 else v


def by_server(paths):
    """Groups report paths by server label: LABEL-RUN.json."""
    groups = {}
    for p in paths:
        m = re.fullmatch(r"(.+)-(\d+)\.json", os.path.basename(p))
        if not m:
            sys.exit(f"{p}: want LABEL-RUN.json")
        groups.setdefault(m.group(1), {})[int(m.group(2))] = read_report(p)
    return groups


def servers(paths, base="gosse"):
    groups = by_server(paths)
    labels = list(groups)
    for label in labels:
        runs = groups[label]
        print(f"{label}:\n")
        table("run", [hub_row(runs[i]) for i in sorted(runs)])
        print()
    # An aborted run's figures are a part of a run's: its table shows it,
    # the medians and the ratios leave it out.
    noted = False
    for label in labels:
        for i in sorted(groups[label]):
            if groups[label][i].get("failed"):
                print(f"- lost events: {label} run {i}: {groups[label][i]['failed']}")
                noted = True
            if groups[label][i].get("aborted"):
                print(f"- left out: {label} run {i}, aborted: {groups[label][i]['aborted']}")
                del groups[label][i]
                noted = True
    if noted:
        print()
    others = [x for x in labels if x != base]
    head = ["median"] + labels
    if base in groups:
        head += [f"{x} / {base}" for x in others]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, read in SIDE_BY_SIDE:
        meds = {}
        for label in labels:
            vals = [value(read, r) for r in groups[label].values()]
            vals = [v for v in vals if v is not None]
            meds[label] = statistics.median(vals) if vals else None
        cells = [name] + [fmt(meds[x]) for x in labels]
        if base in groups:
            b = meds[base]
            cells += [f"{meds[x] / b:.2f}" if meds[x] is not None and b else "" for x in others]
        print("| " + " | ".join(cells) + " |")
    if base in groups:
        # Run i of each server ran in the same round: their ratio is less
        # exposed to the machine's speed drifting during the session.
        print()
        for x in others:
            common = sorted(set(groups[x]) & set(groups[base]))
            cpu = [(value(server_cpu, groups[x][i]), value(server_cpu, groups[base][i])) for i in common]
            pairs = [a / b for a, b in cpu if a is not None and b]
            if pairs:
                print(
                    f"- server CPU {x} / {base}, round by round: {', '.join(f'{p:.2f}' for p in pairs)};"
                    f" median {statistics.median(pairs):.2f}"
                )


class UnknownCPU(Exception):
    """A .cpu file of bench/nats.sh with a figure it could not read (-1)."""


def nats(out, runs, events, scenarios=("publish", "fanout", "replay")):
    """bench/nats.sh's table: OUT/<scenario>/<broker>-<round>.json (and the
    publish scenario's .cpu, each server's CPU seconds) of runs rounds, the
    medians against issue 10's targets. Only the scenarios given are read:
    OUT may hold an earlier invocation's reports of the others."""
    left_out = set()

    def med(scenario, broker, get):
        vals = []
        if scenario not in scenarios:
            return float("nan")
        for r in range(1, runs + 1):
            try:
                rep = json.loads(read_file(f"{out}/{scenario}/{broker}-{r}.json"))
                if rep.get("aborted"):  # cut short: its figures are not a run's
                    left_out.add(f"- left out: {scenario} {broker} run {r}, aborted: {rep['aborted']}")
                    continue
                if rep.get("failed"):  # a run, of a broker that lost events
                    left_out.add(f"- lost events: {scenario} {broker} run {r}: {rep['failed']}")
                vals.append(get(rep))
            except OSError:
                pass  # no report: the scenario was not run (SCENARIOS)
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
                # A report ssebench did not finish, or a run without the
                # figure (a fan-out where nothing arrived has no latency).
                left_out.add(f"- left out: {scenario} {broker} run {r}, no figure in its report: {e!r}")
        return statistics.median(vals) if vals else float("nan")

    pub = lambda r: r["publish"]["per_second"]
    p99 = lambda r: r["delivery"]["latency"]["p99_ms"]
    got = lambda r: r["delivery"]["delivered"] / r["delivery"]["expected"]
    rep = lambda r: r["replay"]["time"]["max_ms"]
    ok = lambda r: r["publish"]["ok"]
    have = lambda x: x == x  # not NaN: the scenario ran
    num = lambda x, spec: format(x, spec) if have(x) else "-"  # a median, "-" where no run gave one

    def met(ok, *figures):  # the target's verdict, none without every figure it is about
        return "no figure" if not all(have(x) for x in figures) else "yes" if ok else "no"

    print("| figure | memory | nats | target | met |")
    print("|---|---|---|---|---|")
    m, n = med("publish", "memory", pub), med("publish", "nats", pub)
    if have(m) or have(n):
        ratio = f" ({n / m:.2f}x)" if m and have(m) and have(n) else ""  # none to a memory run that published nothing
        print(f"| publish, requests/s | {num(m, '.0f')} | {num(n, '.0f')} | nats >= 0.5 x memory | {met(n >= 0.5 * m, m, n)}{ratio} |")

        def cpu(broker, r):  # CPU µs per accepted publish: servers, ssebench
            rep = json.loads(read_file(f"{out}/publish/{broker}-{r}.json"))
            if rep.get("aborted"):  # left out of the medians above too
                raise ValueError(rep["aborted"])
            servers = [float(x) for x in read_file(f"{out}/publish/{broker}-{r}.cpu").split()]
            if any(x < 0 for x in servers):  # a process that was gone at the end
                raise UnknownCPU(" ".join(f"{x:.2f}" for x in servers))
            ok = rep["publish"]["ok"]
            return [1e6 * s / ok for s in servers] + [1e6 * rep["client"]["cpu_seconds"] / ok]

        for b in ("memory", "nats"):
            rows = []
            for r in range(1, runs + 1):
                try:
                    rows.append(cpu(b, r))
                except UnknownCPU as e:
                    left_out.add(f"- left out of the CPU per request: publish {b} run {r}, a server's CPU unknown: {e}")
                except (OSError, KeyError, TypeError, ValueError, ZeroDivisionError):
                    pass
            if rows:
                cols = [statistics.median(c) for c in zip(*rows)]
                names = ["ssehub"] if len(cols) == 2 else ["nats-server", "ssehub A", "ssehub B"]
                parts = ", ".join(f"{n} {v:.0f}" for n, v in zip(names + ["ssebench"], cols))
                # The median of the runs' totals: the medians per process
                # may come from different runs, and their sum is no run's.
                total = statistics.median(sum(row) for row in rows)
                print(f"| publish CPU µs per request, {b} | {parts}; total {total:.0f} | | | |")
    m, n = med("fanout", "memory", p99), med("fanout", "nats", p99)
    if have(m) or have(n):
        print(f"| fan-out p99, ms | {num(m, '.1f')} | {num(n, '.1f')} | nats <= memory + 20 ms | {met(n <= m + 20, m, n)} |")
        print(f"| fan-out delivered | {num(med('fanout', 'memory', got), '.4f')} | {num(med('fanout', 'nats', got), '.4f')} | 1 | |")
        print(f"| fan-out events accepted | {num(med('fanout', 'memory', ok), '.0f')} | {num(med('fanout', 'nats', ok), '.0f')} | {events} | |")
    m, n = med("replay", "memory", rep), med("replay", "nats", rep)
    if have(m) or have(n):
        print(f"| replay, ms | {num(m, '.1f')} | {num(n, '.1f')} | nats < 1000 ms | {met(n < 1000, n)} |")
    for line in sorted(left_out):
        print(line)


def main(argv):
    kind, args = argv[0], argv[1:]
    if kind == "ticker":
        labels = ("ssehub", "FastAPI seed")
        if args and args[0].startswith("--labels="):
            labels = tuple(args[0].split("=", 1)[1].split(","))
            args = args[1:]
        ticker(args, labels)
    elif kind == "hub":
        table("run", [hub_row(r) for r in load(args)])
    elif kind == "nats":
        if len(args) > 3:
            nats(args[0], int(args[1]), int(args[2]), args[3].split())
        else:
            nats(args[0], int(args[1]), int(args[2]))
    elif kind == "servers":
        base = "gosse"
        if args and args[0].startswith("--base="):
            base = args[0].split("=", 1)[1]
            args = args[1:]
        servers(args, base)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
