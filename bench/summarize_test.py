"""Tests of summarize.py: python3 -m unittest discover -s bench -p summarize_test.py"""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summarize  # noqa: E402


def hub_report(cpu, rss_per_conn, p99, aborted=None):
    """A fanout report with the fields summarize.py reads."""
    r = {
        "scenario": "fanout",
        "connect": {"attempted": 100, "connected": 100, "failed": 0, "time": {"p50_ms": 1, "p99_ms": 2}, "wall_ms": 50},
        "delivery": {
            "expected": 1000,
            "delivered": 1000,
            "duplicates": 0,
            "out_of_order": 0,
            "dropped_streams": 0,
            "latency": {"p50_ms": p99 / 2, "p90_ms": p99 / 1.5, "p99_ms": p99, "max_ms": p99 * 1.2},
        },
        "publish": {"ok": 10, "failed": 0, "per_second": 5.0, "latency": {"p99_ms": 1.0}},
        "server": {
            "cpu_seconds": cpu,
            "rss_idle_bytes": 10 << 20,
            "rss_peak_bytes": (10 << 20) + 100 * rss_per_conn,
            "rss_per_conn_bytes": rss_per_conn,
            "goroutines_peak": -1,
        },
        "client": {"cpu_seconds": 1.0},
    }
    if aborted:
        r["aborted"] = aborted
    return r


class ServersTest(unittest.TestCase):
    def run_servers(self, reports):
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for name, r in reports.items():
                p = os.path.join(d, name)
                with open(p, "w") as f:
                    json.dump(r, f)
                paths.append(p)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                summarize.servers(paths, base="gosse")
            return out.getvalue()

    def side_by_side(self, out, name):
        """The cells of row name of the side-by-side table, by column."""
        head = None
        for line in out.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] == "median":
                head = cells
            elif head and cells[0] == name:
                return dict(zip(head[1:], cells[1:]))
        self.fail(f"no row {name!r} in:\n{out}")

    def test_an_aborted_run_is_shown_and_left_out_of_the_medians(self):
        out = self.run_servers(
            {
                "gosse-1.json": hub_report(5.0, 24000, 150.0),
                "gosse-2.json": hub_report(5.0, 24000, 150.0),
                "ssehub-default-1.json": hub_report(6.0, 30000, 100.0),
                # Cut short by -timeout: its figures are not a run's.
                "ssehub-default-2.json": hub_report(0.5, 2000, 5000.0, aborted="-timeout 2m reached"),
            }
        )
        self.assertIn("-timeout 2m reached", out, "the aborted run's table does not say so")
        for row, want in (("server CPU s", "6.000"), ("latency p99 ms", "100.0"), ("RSS / subscriber KB", "30.0")):
            got = self.side_by_side(out, row)["ssehub-default"]
            self.assertEqual(got, want, f"median {row} of ssehub-default's one complete run")
        self.assertNotIn("0.10", out, "the aborted run's CPU ratio is in the round by round list")

    def test_a_run_without_a_report_is_left_out(self):
        # ssebench killed (the OOM killer at 10,000 subscribers) or refusing
        # its flags (exit 2) wrote nothing: fanout.sh goes on, and the
        # table of the other runs must not be lost with it.
        with tempfile.TemporaryDirectory() as d:
            paths = write_reports(d, {"gosse-1.json": hub_report(5.0, 24000, 150.0), "ssehub-default-1.json": hub_report(6.0, 30000, 100.0)})
            empty = os.path.join(d, "ssehub-default-2.json")
            open(empty, "w").close()
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                summarize.servers(paths + [empty], base="gosse")
            out = out.getvalue()
        self.assertIn("- left out: ssehub-default run 2, aborted: no report", out)
        self.assertEqual(self.side_by_side(out, "server CPU s")["ssehub-default"], "6.000")

    def test_a_round_without_a_cpu_figure_is_left_out_of_the_cpu_ratios(self):
        out = self.run_servers(
            {
                "gosse-1.json": hub_report(5.0, 24000, 150.0),
                "gosse-2.json": hub_report(-1, 24000, 150.0),  # /proc not read
                "gosse-3.json": hub_report(4.0, 24000, 150.0),
                "ssehub-default-1.json": hub_report(6.0, 30000, 100.0),
                "ssehub-default-2.json": hub_report(7.0, 30000, 100.0),
                "ssehub-default-3.json": hub_report(0, 30000, 100.0),  # a server that used no measurable CPU
            }
        )
        self.assertIn("round by round: 1.20, 0.00; median 0.60", out)

    def test_a_run_that_lost_events_is_named_and_kept_in_the_medians(self):
        lossy = hub_report(6.0, 30000, 120.0)
        lossy["delivery"]["delivered"] = 990
        lossy["failed"] = "10 of 1000 events missing at the end (1 dropped streams)"
        out = self.run_servers(
            {
                "gosse-1.json": hub_report(5.0, 24000, 150.0),
                "ssehub-default-1.json": hub_report(6.0, 30000, 100.0),
                "ssehub-default-2.json": lossy,
            }
        )
        self.assertIn("- lost events: ssehub-default run 2: 10 of 1000 events missing", out)
        self.assertEqual(self.side_by_side(out, "delivered %")["ssehub-default"], "99.5", "the loss is in the median")

    def test_a_column_only_a_later_run_has_is_shown(self):
        first = hub_report(6.0, 30000, 100.0)
        del first["delivery"]  # no subscriber connected: no delivery section
        out = self.run_servers(
            {
                "ssehub-default-1.json": first,
                "ssehub-default-2.json": hub_report(6.0, 30000, 120.0),
            }
        )
        self.assertIn("lat_p99_ms", out, "the delivery columns of run 2 are missing")


def ticker_report(cpu, rss_per_conn, aborted=None):
    """A ticker report with the fields summarize.py reads."""
    r = {
        "scenario": "ticker",
        "connect": {"attempted": 100, "connected": 100, "failed": 0},
        "delivery": {"expected": 1000, "delivered": 1000},
        "server": {
            "cpu_seconds": cpu,
            "rss_idle_bytes": 10 << 20,
            "rss_peak_bytes": (10 << 20) + 100 * rss_per_conn,
            "rss_per_conn_bytes": rss_per_conn,
        },
        "client": {"cpu_seconds": 1.0},
    }
    if aborted:
        r["aborted"] = aborted
    return r


def write_reports(d, reports):
    paths = []
    for name, r in reports.items():
        p = os.path.join(d, name)
        with open(p, "w") as f:
            json.dump(r, f)
        paths.append(p)
    return paths


def median_row(out, label):
    """The cells of the first **median** row after label's table, by column."""
    head = None
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == label:
            head = cells
        elif head and cells[0] == "**median**":
            return dict(zip(head[1:], cells[1:]))
    raise AssertionError(f"no median row after {label!r} in:\n{out}")


class TickerTest(unittest.TestCase):
    def run_ticker(self, a, ref):
        with tempfile.TemporaryDirectory() as d:
            pa = write_reports(d, {f"a-{i}.json": r for i, r in enumerate(a, 1)})
            pr = write_reports(d, {f"ref-{i}.json": r for i, r in enumerate(ref, 1)})
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                summarize.ticker(pa + ["--"] + pr, labels=("ssehub", "seed"))
            return out.getvalue()

    def test_an_aborted_run_is_shown_and_left_out_of_the_medians_and_ratios(self):
        out = self.run_ticker(
            [ticker_report(1.0, 12000), ticker_report(1.2, 12000), ticker_report(0.1, 1000, aborted="-timeout 5m reached")],
            [ticker_report(3.0, 22000), ticker_report(3.0, 22000), ticker_report(3.0, 22000)],
        )
        self.assertIn("-timeout 5m reached", out, "the aborted run's table does not say so")
        self.assertEqual(median_row(out, "ssehub")["cpu_s"], "1.100", "median CPU of the two complete runs")
        self.assertIn("- cpu_s: 1.100 / 3.000 = 0.37", out)
        self.assertNotIn("0.03", out, "the aborted run's CPU ratio is in the round by round list")

    def test_a_run_without_a_report_is_left_out(self):
        with tempfile.TemporaryDirectory() as d:
            pa = write_reports(d, {"a-1.json": ticker_report(1.0, 12000)})
            empty = os.path.join(d, "a-2.json")
            open(empty, "w").close()
            pr = write_reports(d, {f"ref-{i}.json": ticker_report(3.0, 22000) for i in (1, 2)})
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                summarize.ticker(pa + [empty, "--"] + pr, labels=("ssehub", "seed"))
            out = out.getvalue()
        self.assertIn("- left out: ssehub run 2, aborted: no report", out)
        self.assertEqual(median_row(out, "ssehub")["cpu_s"], "1.000")

    def test_a_run_that_lost_events_is_named(self):
        lossy = ticker_report(1.1, 12000)
        lossy["failed"] = "3 of 1000 events missing at the end (3 dropped streams)"
        out = self.run_ticker([ticker_report(1.0, 12000), lossy], [ticker_report(3.0, 22000), ticker_report(3.0, 22000)])
        self.assertIn("- lost events: ssehub run 2: 3 of 1000 events missing", out)
        self.assertEqual(median_row(out, "ssehub")["cpu_s"], "1.050", "the run that lost events is a run")

    def test_a_round_without_a_figure_is_left_out_of_the_round_by_round_ratios(self):
        out = self.run_ticker(
            [ticker_report(1.0, 12000), ticker_report(1.2, 12000), ticker_report(1.1, -1)],
            [ticker_report(3.0, 24000), ticker_report(-1, 24000), ticker_report(0, 24000)],
        )
        self.assertIn("- cpu_s, round by round: 0.33; median 0.33", out)
        self.assertIn("- rss_per_conn_kib, round by round: 0.50, 0.50; median 0.50", out)


class HubTableTest(unittest.TestCase):
    def run_hub(self, reports):
        with tempfile.TemporaryDirectory() as d:
            paths = write_reports(d, {f"idle-{i}.json": r for i, r in enumerate(reports, 1)})
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                summarize.main(["hub"] + paths)
            return out.getvalue()

    @staticmethod
    def idle_report(settle_goroutines_ms, cpu=2.0):
        return {
            "scenario": "idle",
            "idle": {
                "goroutines_held": 20009,
                "settle_goroutines_ms": settle_goroutines_ms,
                "settle_rss_ms": -1,
                "rss_after_bytes": 100 << 20,
            },
            "server": {
                "cpu_seconds": cpu,
                "rss_idle_bytes": 16 << 20,
                "rss_peak_bytes": 166 << 20,
                "rss_per_conn_bytes": 15700,
                "goroutines_idle": 9,
            },
            "client": {"cpu_seconds": 1.0},
        }

    def test_a_run_that_never_settled_is_not_the_fastest(self):
        # -1 is "not within -settle": slower than any run that settled.
        out = self.run_hub([self.idle_report(103), self.idle_report(-1), self.idle_report(104)])
        med = median_row(out, "run")
        self.assertEqual(med["settle_goroutines_ms"], "104", "median of 103, never and 104")
        self.assertEqual(med["settle_rss_ms"], "never", "no run settled")

    def test_a_run_without_a_report_is_left_out_of_the_median(self):
        with tempfile.TemporaryDirectory() as d:
            paths = write_reports(d, {"idle-1.json": self.idle_report(103, cpu=2.0)})
            empty = os.path.join(d, "idle-2.json")
            open(empty, "w").close()
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                summarize.main(["hub"] + paths + [empty])
            out = out.getvalue()
        self.assertIn("| no report (", out, "the run is not shown as one without a report")
        self.assertEqual(median_row(out, "run")["cpu_s"], "2.000")

    def test_an_unknown_figure_is_left_out_of_the_median(self):
        # -1 is "unknown": the CPU of a run whose server could not be read.
        out = self.run_hub([self.idle_report(103, cpu=2.0), self.idle_report(103, cpu=-1), self.idle_report(103, cpu=3.0)])
        self.assertEqual(median_row(out, "run")["cpu_s"], "2.500", "median of the two known CPU times")


class NatsTest(unittest.TestCase):
    """summarize.py nats: bench/nats.sh's OUT/<scenario>/<broker>-<round>.json."""

    def run_nats(self, files, runs):
        with tempfile.TemporaryDirectory() as d:
            for name, content in files.items():
                p = os.path.join(d, name)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "w") as f:
                    f.write(content if isinstance(content, str) else json.dumps(content))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                summarize.nats(d, runs, 100)
            return out.getvalue()

    @staticmethod
    def publish_report(ok, seconds=10.0, aborted=None, client_cpu=1.0):
        r = {"publish": {"ok": ok, "per_second": ok / seconds}, "client": {"cpu_seconds": client_cpu}}
        if aborted:
            r["aborted"] = aborted
        return r

    def test_an_aborted_publish_run_is_left_out_of_the_cpu_per_request(self):
        out = self.run_nats(
            {
                "publish/memory-1.json": self.publish_report(100000),
                "publish/memory-1.cpu": "10.00\n",
                # Cut short after 10 requests: its CPU per request is not a run's.
                "publish/memory-2.json": self.publish_report(10, aborted="-timeout 3m reached"),
                "publish/memory-2.cpu": "10.00\n",
                "publish/nats-1.json": self.publish_report(50000),
                "publish/nats-1.cpu": "2.00 5.00 0.00\n",
                "publish/nats-2.json": self.publish_report(50000),
                "publish/nats-2.cpu": "2.00 5.00 0.00\n",
            },
            runs=2,
        )
        self.assertIn("- left out: publish memory run 2, aborted: -timeout 3m reached", out)
        self.assertIn("| publish CPU µs per request, memory | ssehub 100, ssebench 10; total 110 |", out)

    def test_the_total_cpu_per_request_is_the_median_of_the_runs_totals(self):
        # Run by run, server + ssebench: 10 + 50, 50 + 10, 30 + 10 µs. The
        # medians per process (30, 10) add up to 40, no run's total.
        out = self.run_nats(
            {
                "publish/memory-1.json": self.publish_report(100000, client_cpu=5.0),
                "publish/memory-1.cpu": "1.00\n",
                "publish/memory-2.json": self.publish_report(100000, client_cpu=1.0),
                "publish/memory-2.cpu": "5.00\n",
                "publish/memory-3.json": self.publish_report(100000, client_cpu=1.0),
                "publish/memory-3.cpu": "3.00\n",
            },
            runs=3,
        )
        self.assertIn("| publish CPU µs per request, memory | ssehub 30, ssebench 10; total 60 |", out)

    def test_a_target_without_a_figure_is_not_called_missed(self):
        # Every NATS run cut short: there is no NATS figure to hold
        # against the target, which is then neither met nor missed.
        out = self.run_nats(
            {
                "publish/memory-1.json": self.publish_report(100000),
                "publish/memory-1.cpu": "10.00\n",
                "publish/nats-1.json": self.publish_report(10, aborted="-timeout 3m reached"),
                "publish/nats-1.cpu": "2.00 5.00 0.00\n",
            },
            runs=1,
        )
        self.assertIn("| publish, requests/s | 10000 | - | nats >= 0.5 x memory | no figure |", out)

    def test_a_memory_run_without_an_accepted_publish_is_shown(self):
        # Every publish to the memory broker refused (a token the server
        # does not take): 0 requests/s, no ratio to it, and the table goes on.
        out = self.run_nats(
            {
                "publish/memory-1.json": self.publish_report(0),
                "publish/memory-1.cpu": "1.00\n",
                "publish/nats-1.json": self.publish_report(50000),
                "publish/nats-1.cpu": "2.00 5.00 0.00\n",
            },
            runs=1,
        )
        self.assertIn("| publish, requests/s | 0 | 5000 | nats >= 0.5 x memory |", out)

    def test_a_run_with_an_unknown_cpu_figure_is_left_out_of_the_cpu_per_request(self):
        out = self.run_nats(
            {
                "publish/memory-1.json": self.publish_report(100000),
                "publish/memory-1.cpu": "10.00\n",
                "publish/nats-1.json": self.publish_report(50000),
                "publish/nats-1.cpu": "2.00 5.00 0.00\n",
                # The NATS server died during the run: its CPU is unknown
                # (-1), or, from nats.sh before it said so, negative.
                "publish/nats-2.json": self.publish_report(50000),
                "publish/nats-2.cpu": "-1.00 5.00 0.00\n",
                "publish/nats-3.json": self.publish_report(50000),
                "publish/nats-3.cpu": "-0.53 5.00 0.00\n",
            },
            runs=3,
        )
        self.assertIn("| publish CPU µs per request, nats | nats-server 40, ssehub A 100, ssehub B 0, ssebench 20; total 160 |", out)
        self.assertIn("- left out of the CPU per request: publish nats run 2", out)
        self.assertIn("- left out of the CPU per request: publish nats run 3", out)

    def test_a_run_without_the_figure_is_named(self):
        def fanout(p99):
            d = {"expected": 500, "delivered": 500 if p99 else 0}
            if p99:
                d["latency"] = {"p99_ms": p99}
            return {"publish": {"ok": 100}, "delivery": d}

        out = self.run_nats(
            {
                "fanout/memory-1.json": fanout(100.0),
                "fanout/nats-1.json": fanout(110.0),
                "fanout/nats-2.json": fanout(None),  # nothing arrived: no latency
                "fanout/nats-3.json": "",  # ssebench wrote no report
            },
            runs=3,
        )
        self.assertIn("| fan-out p99, ms | 100.0 | 110.0 |", out)
        self.assertIn("- left out: fanout nats run 2", out, "a run that delivered nothing is left out unsaid")
        self.assertIn("- left out: fanout nats run 3", out, "a run without a report is left out unsaid")

    def test_a_fanout_run_that_lost_events_is_named(self):
        lossy = {"publish": {"ok": 100}, "delivery": {"expected": 500, "delivered": 450, "latency": {"p99_ms": 90.0}}}
        lossy["failed"] = "50 of 500 events missing at the end (1 dropped streams)"
        out = self.run_nats(
            {"fanout/memory-1.json": {"publish": {"ok": 100}, "delivery": {"expected": 500, "delivered": 500, "latency": {"p99_ms": 100.0}}},
             "fanout/nats-1.json": lossy},
            runs=1,
        )
        self.assertIn("- lost events: fanout nats run 1: 50 of 500 events missing", out)
        self.assertIn("| fan-out delivered | 1.0000 | 0.9000 | 1 | |", out)

    def test_a_scenario_this_invocation_did_not_run_is_not_shown(self):
        # OUT holds an earlier invocation's publish reports; this one ran
        # SCENARIOS=fanout.
        files = {
            "publish/memory-1.json": self.publish_report(12000),
            "publish/nats-1.json": self.publish_report(5000),
            "fanout/memory-1.json": {"publish": {"ok": 100}, "delivery": {"expected": 5, "delivered": 5, "latency": {"p99_ms": 10.0}}},
            "fanout/nats-1.json": {"publish": {"ok": 100}, "delivery": {"expected": 5, "delivered": 5, "latency": {"p99_ms": 12.0}}},
        }
        with tempfile.TemporaryDirectory() as d:
            for name, r in files.items():
                os.makedirs(os.path.join(d, os.path.dirname(name)), exist_ok=True)
                with open(os.path.join(d, name), "w") as f:
                    json.dump(r, f)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                summarize.main(["nats", d, "1", "100", "fanout"])
        self.assertIn("| fan-out p99, ms | 10.0 | 12.0 |", out.getvalue())
        self.assertNotIn("publish", out.getvalue(), "an earlier invocation's publish figures are shown")


class HubScriptTest(unittest.TestCase):
    """bench/hub.sh's summary, run with RUNS=0: it builds, starts no server."""

    def test_only_this_invocations_reports_are_summarized(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as d:
            # A report of an earlier invocation with more rounds, as
            # bench/results/hub keeps: run 3 of a session long gone.
            with open(os.path.join(d, "idle-3.json"), "w") as f:
                json.dump(HubTableTest.idle_report(103), f)
            env = dict(os.environ, RUNS="0", OUT=d, LOADMAX="100")
            done = subprocess.run(
                ["bash", "bench/hub.sh", "idle"], cwd=root, env=env, capture_output=True, text=True, timeout=300
            )
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertNotIn("run 1 |", done.stdout, "a report this invocation did not write is in its table")


class TickerScriptTest(unittest.TestCase):
    """bench/ticker.sh with RUNS=0: it builds, starts no server."""

    def test_a_base_rev_that_does_not_build_leaves_no_temporary_directory(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as d:
            tmp = os.path.join(d, "tmp")
            os.mkdir(tmp)
            env = dict(os.environ, RUNS="0", OUT=d, SERVERS="ssehub", BASE_REV="no-such-revision", TMPDIR=tmp)
            done = subprocess.run(
                ["bash", "bench/ticker.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=300
            )
            self.assertNotEqual(done.returncode, 0, "ticker.sh built a revision that does not exist")
            self.assertEqual(os.listdir(tmp), [], "ticker.sh left the base revision's source behind")


class TickerSummaryScriptTest(unittest.TestCase):
    """bench/ticker.sh's summary, one short round."""

    def run_ticker(self, servers):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as d:
            (port,) = free_ports(1)
            env = dict(
                os.environ, RUNS="1", SERVERS=servers, N="2", COUNT="2", INTERVAL="0s", PORT=str(port), OUT=d, LOADMAX="100",
            )
            done = subprocess.run(["bash", "bench/ticker.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def test_servers_without_the_seed_are_summarized(self):
        # Neither the FastAPI seed nor a base revision: the transports
        # side by side, the last the reference, rather than no table.
        out = self.run_ticker("gin detached")
        self.assertIn("| median | ssehub gin | ssehub detached | ssehub gin / ssehub detached |", out)

    def test_one_server_is_summarized(self):
        out = self.run_ticker("gin")
        self.assertIn("| **median** |", out)


class FanoutScriptTest(unittest.TestCase):
    """bench/fanout.sh, one short round."""

    def test_variants_without_go_sse_get_ratios(self):
        # Without the go-sse peer, the last variant is the base of the
        # ratios, rather than there being none.
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as d:
            (port,) = free_ports(1)
            env = dict(
                os.environ, RUNS="1", VARIANTS="gin detached", FANOUT_N="2", EVENTS="2", FANOUT_RATE="20",
                PORT=str(port), OUT=d, LOADMAX="100",
            )
            done = subprocess.run(["bash", "bench/fanout.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("| median | ssehub-gin | ssehub-detached | ssehub-gin / ssehub-detached |", done.stdout)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class NatsScriptTest(unittest.TestCase):
    """bench/nats.sh, one short round of the publish scenario on each broker."""

    def test_a_round_leaves_nothing_in_the_temporary_directory(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as d:
            tmp = os.path.join(d, "tmp")
            os.mkdir(tmp)
            a, b, nats = free_ports(3)
            env = dict(
                os.environ, RUNS="1", SCENARIOS="publish", PUBLISH_DURATION="500ms", PUBLISHERS="2",
                PORT_A=str(a), PORT_B=str(b), NATS_PORT=str(nats), OUT=os.path.join(d, "out"), LOADMAX="100", TMPDIR=tmp,
            )
            done = subprocess.run(
                ["bash", "bench/nats.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=600
            )
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(os.listdir(tmp), [], "nats.sh left its NATS server's files behind")


def alive(pid):
    """Whether process pid runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid):
    """The pids of pid's child processes, with their command lines."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline") as f:
                cmd = f.read().replace("\0", " ")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out[int(d)] = cmd
    return out


class CPUTicksTest(unittest.TestCase):
    """lib.sh's cpu_ticks, which nats.sh reads its servers' CPU time with."""

    def test_a_pid_a_later_process_has_is_read_as_gone(self):
        # A server that exited mid-scenario and was reaped left its pid to
        # the kernel, which may give it to a later process: its CPU time is
        # no server's. The kernel reuses the pid here in a pid namespace of
        # the test's own (unshare, as root), where the next pid can be set.
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs unshare and root for a pid namespace")
        script = r"""
[ "$$" = 1 ] || exit 0 # not in a pid namespace of its own: leave the machine's next pid alone
. bench/lib.sh
sleep 60 & pid=$!
start=$(proc_start "$pid")
echo "server $(cpu_ticks "$pid" "$start")"
kill "$pid"; wait "$pid" 2>/dev/null
# A pid comes round again a whole cycle of pids later, not within the
# clock tick (10 ms) start times count in: start the later process later.
sleep 0.05
for _ in $(seq 10); do
	echo $((pid - 1)) >/proc/sys/kernel/ns_last_pid || { echo "no next pid"; exit 0; }
	sleep 60 & other=$!
	[ "$other" = "$pid" ] && break
	kill "$other"; wait "$other" 2>/dev/null
done
[ "$other" = "$pid" ] || { echo "no reuse"; exit 0; }
echo "later $(cpu_ticks "$pid" "$start")"
kill "$other"
"""
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        done = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", script],
            cwd=root, capture_output=True, text=True, timeout=60,
        )
        if not done.stdout.startswith("server "):
            self.skipTest(f"no pid namespace here: {done.stderr}")
        self.assertRegex(done.stdout, r"^server \d+\n", "the running server's CPU time is unknown")
        if "later " not in done.stdout:
            self.skipTest(f"the pid was not reused: {done.stdout}")
        self.assertIn("later -1\n", done.stdout, "a later process's CPU time is read as the server's")


class NatsReplayInterruptTest(unittest.TestCase):
    """bench/nats-replay.sh stopped by a signal stops every process it
    started: the NATS server, the ssehub instances and its replay client."""

    def test_a_signal_stops_everything_the_script_started(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as d:
            tmp = os.path.join(d, "tmp")
            os.mkdir(tmp)
            a, b, nats = free_ports(3)
            env = dict(
                os.environ, RUNS="1", EVENTS="50", PORT_A=str(a), PORT_B=str(b), NATS_PORT=str(nats), OUT=d, TMPDIR=tmp,
            )
            script = subprocess.Popen(
                ["bash", "bench/nats-replay.sh"], cwd=root, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            started = {}
            try:
                # The replay client has published and waits for the second
                # instance: the script starts it, then lets the client on.
                ready = os.path.join(d, "jetstream-replay.txt.go")
                deadline = time.monotonic() + 240  # the build comes first
                while time.monotonic() < deadline and not os.path.exists(ready) and script.poll() is None:
                    time.sleep(0.02)
                started = children(script.pid)
                self.assertTrue(os.path.exists(ready), "the replay client did not publish")
                script.send_signal(signal.SIGTERM)
                try:
                    script.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.fail("nats-replay.sh still runs 20 s after SIGTERM")
                for _ in range(100):
                    left = {pid: cmd for pid, cmd in started.items() if alive(pid)}
                    if not left:
                        break
                    time.sleep(0.05)
                self.assertEqual(left, {}, "processes outlive the script")
                self.assertEqual(os.listdir(tmp), [], "the NATS server's files outlive the script")
            finally:
                try:
                    os.killpg(script.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                script.wait()


class NatsReplayScriptTest(unittest.TestCase):
    """bench/nats-replay.sh, one short run."""

    def test_a_go_file_an_earlier_invocation_left_does_not_hang_the_run(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as d:
            # An invocation killed (SIGKILL) while its client waited for the
            # second instance left the file that tells the client to go on.
            open(os.path.join(d, "jetstream-replay.txt.go"), "w").close()
            a, b, nats = free_ports(3)
            env = dict(os.environ, RUNS="1", EVENTS="5000", PORT_A=str(a), PORT_B=str(b), NATS_PORT=str(nats), OUT=d)
            script = subprocess.Popen(
                ["bash", "bench/nats-replay.sh"], cwd=root, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
            )
            try:
                out, _ = script.communicate(timeout=120)  # the build comes first
            except subprocess.TimeoutExpired:
                self.fail("nats-replay.sh still runs after 2 minutes")
            finally:
                try:
                    os.killpg(script.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                script.wait()
            self.assertEqual(script.returncode, 0)
            self.assertIn("run 1: 4999 of 4999 events replayed", out)

    def test_the_runs_median_is_reported(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as d:
            a, b, nats = free_ports(3)
            env = dict(os.environ, RUNS="3", EVENTS="20", PORT_A=str(a), PORT_B=str(b), NATS_PORT=str(nats), OUT=d)
            done = subprocess.run(
                ["bash", "bench/nats-replay.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=300,
            )
            self.assertEqual(done.returncode, 0, done.stderr)
            times = [float(m) for m in re.findall(r"^run \d: 19 of 19 events replayed .* in ([\d.]+) ms", done.stdout, re.M)]
            self.assertEqual(len(times), 3, done.stdout)
            want = f"median of 3 runs: {statistics.median(times):.1f} ms"
            self.assertIn(want, done.stdout)
            with open(os.path.join(d, "jetstream-replay.txt")) as f:
                self.assertIn(want, f.read())


class NatsReplayPortTest(unittest.TestCase):
    """bench/nats-replay.sh with a port it needs taken by another server."""

    def test_a_port_in_use_is_refused(self):
        # Something else answers /readyz on PORT_B: the second instance
        # cannot listen there, and the resume must not be timed against
        # whatever holds the port.
        import http.server
        import threading

        class Ready(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            with tempfile.TemporaryDirectory() as d:
                a, nats = free_ports(2)
                env = dict(
                    os.environ, RUNS="1", EVENTS="20", PORT_A=str(a), PORT_B=str(other.server_address[1]),
                    NATS_PORT=str(nats), OUT=d,
                )
                done = subprocess.run(
                    ["bash", "bench/nats-replay.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=300,
                )
            self.assertNotEqual(done.returncode, 0, f"nats-replay.sh timed a resume on another server: {done.stdout}")
            self.assertIn(f"port {other.server_address[1]} is in use", done.stderr)
        finally:
            other.shutdown()
            other.server_close()


class InterruptTest(unittest.TestCase):
    """A benchmark script stopped by a signal stops its server and ssebench
    at once, not when ssebench's run would have ended."""

    def test_a_signal_stops_the_server_and_ssebench(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with tempfile.TemporaryDirectory() as d:
            # One subscriber held for a minute: far longer than the test waits.
            env = dict(os.environ, RUNS="1", OUT=d, LOADMAX="100", PORT=str(port), IDLE_N="1", IDLE_HOLD="60s")
            script = subprocess.Popen(
                ["bash", "bench/hub.sh", "idle"], cwd=root, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            try:
                deadline = time.monotonic() + 240  # the build comes first
                bench = server = None
                while time.monotonic() < deadline and not bench:
                    for pid, cmd in children(script.pid).items():
                        if cmd.startswith("bin/ssebench "):
                            bench = pid
                        elif cmd.startswith("bin/ssehub "):
                            server = pid
                    time.sleep(0.05)
                self.assertTrue(bench and server, "hub.sh did not start its server and ssebench")
                time.sleep(0.5)  # ssebench under way (an earlier signal is as good)
                script.send_signal(signal.SIGTERM)
                try:
                    script.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.fail("hub.sh still runs 20 s after SIGTERM: it waits for ssebench's run to end")
                self.assertFalse(alive(server), "the server outlives the script")
                for _ in range(100):  # ssebench writes its report first
                    if not alive(bench):
                        break
                    time.sleep(0.05)
                self.assertFalse(alive(bench), "ssebench outlives the script")
            finally:
                try:
                    os.killpg(script.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                script.wait()


if __name__ == "__main__":
    unittest.main()
