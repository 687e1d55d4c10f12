"""Where the hub's CPU goes, per stage of a package, from py-spy's collapsed stacks.

    .venv/bin/python -m bench.exchange --sizes 400k --no-half-load --profile-hub /tmp/prof --json \
        > /tmp/run.json
    .venv/bin/python -m bench.profile_stages /tmp/prof/hub-400kb.txt --run /tmp/run.json

Every sample of the hub process (all its threads; py-spy leaves idle threads out, but a thread
blocked in fsync counts as busy) is filed under
the first stage whose marker appears in its stack, markers tried in the order of ``STAGES``; the
rest is the event loop and library I/O that no stage owns. With ``--run`` (the bench's JSON of the
same run), shares are also turned into CPU ms per package (share × the hub's CPU ms/package).
The parse itself runs in the worker processes, which py-spy does not sample here: the bench's
`hub workers` figure is that part.
"""

# ruff: noqa: E402 (the path fix below must run before the imports)
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: bench/ on sys.path would shadow the `exchange` package
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import collections
import json

# (stage, markers): a sample belongs to the first stage one of whose markers is a frame of it.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("receipt: sign", ("Receipts._sign",)),
    ("receipt: store", ("insert_receipts",)),
    ("receipt: wait for the ledger position", ("Ledger.wait_indexed",)),
    ("ledger: sequence leaves", ("Ledger._run", "Ledger.sequence")),
    (
        "hashing and fsync (body to disk)",
        ("IncomingBlob.", "BlobStore.keep_file", "BlobStore.ensure_dir", "_fsync_dir"),
    ),
    (
        "parse: hand-over to the worker processes",
        ("Inspector.inspect", "_ExecutorManagerThread", "Queue._feed", "CpuPool.run"),
    ),
    ("database: the submit statement", ("PostgresPackages.insert", "find_by_digest")),
    ("checks: sender, registry, policy", ("Submissions._accepted", "check_sender", "judge")),
    ("publish: outbox to broker, confirms", ("Dispatcher.", "Broker.publish")),
    ("consume: inbox worker, delivered", ("InboxWorker.", "IncomingMessage", "_on_deliver")),
    (
        "HTTP: upload, auth, response",
        (
            "stream_body",
            "web_protocol",
            "RequestHandler",
            "StreamResponse",
            "ConnectionGuard",
            "authenticate",
            "_caller",
            "web_response",
            "json_response",
        ),
    ),
    ("push, federation, other loops", ("Pusher.", "Federation", "Reporter")),
]
UNOWNED = "event loop and library I/O (no stage)"


def classify(path: Path) -> tuple[collections.Counter, collections.Counter, int]:
    """Samples per stage (all threads; the event-loop thread alone), and the total, from a
    collapsed-stack file (``stack count`` lines)."""
    counts: collections.Counter = collections.Counter()
    loop: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = [frame.split(" (")[0] for frame in stack.split(";")]
        stage = _stage(frames)
        counts[stage] += samples
        if frames[0] == "<module>":  # the main thread runs the event loop
            loop[stage] += samples
    return counts, loop, total


def _stage(frames: list[str]) -> str:
    for stage, markers in STAGES:
        if any(marker in frame for frame in frames for marker in markers):
            return stage
    return UNOWNED


def hub_cpu_ms(run: Path, size_label: str | None) -> tuple[str, float] | None:
    """(size, hub CPU ms/package) of the bench JSON's result for ``size_label`` (or the last)."""
    results = json.loads(run.read_text())["results"]
    chosen = [r for r in results if size_label in (None, r["size_label"])]
    if not chosen:
        return None
    return chosen[-1]["size_label"], chosen[-1]["hub_cpu_ms_per_pkg"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", type=Path, help="py-spy collapsed stacks (bench --profile-hub)")
    parser.add_argument("--run", type=Path, help="the bench's --json output of the same run")
    parser.add_argument("--size", help="which result of --run (e.g. '400 KB'; default: last)")
    args = parser.parse_args(argv)
    try:
        counts, loop, total = classify(args.stacks)
        cpu = hub_cpu_ms(args.run, args.size) if args.run else None
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read the profile: {exc}", file=sys.stderr)
        return 2
    if not total:
        print("no samples in the profile", file=sys.stderr)
        return 2
    loop_total = sum(loop.values()) or 1
    header = "| stage | % of samples | % of the event loop's |" + (" ≈ ms/pkg |" if cpu else "")
    print(f"{total} samples" + (f"; {cpu[0]}: hub {cpu[1]:.1f} ms CPU/package" if cpu else ""))
    print(header)
    print("|---|---:|---:|" + ("---:|" if cpu else ""))
    order = [stage for stage, _ in STAGES] + [UNOWNED]
    for stage in sorted(order, key=lambda s: -counts[s]):
        share = counts[stage] / total
        row = f"| {stage} | {100 * share:.1f} | {100 * loop[stage] / loop_total:.1f} |"
        print(row + (f" {share * cpu[1]:.2f} |" if cpu else ""))
    if cpu:
        print(
            "≈ ms/pkg = share of all samples × the hub's CPU ms/package; py-spy samples busy "
            "threads, so a thread waiting in fsync counts as busy: a ceiling for those rows"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
