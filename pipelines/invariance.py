#!/usr/bin/env python3
"""The validation world under changes that must not change what is found.

A labelled world scores what the detectors find; it does not say whether
they found it for the right reasons. Each transform below changes something
a detector must not depend on (the order lines arrive in, the weekday, how
a timestamp is written) or thins the honest population (the peers' own
baselines must hold with fewer peers). The world is rewritten, `groundtruth
detect` runs on it, and the validation world's own scorer scores it against
the same labels.

    python3 pipelines/invariance.py [--groundtruth BIN] [--validation DIR]
                                    [--work DIR] [--only NAME,...]

Prints one table: per transform, each detector's precision and recall at the
account level, the patrols', and the honest accounts and patrols flagged.
Exits 1 if a transform that changes nothing a detector may use (shuffle,
shift, utc) changes any figure; thinning may lose a replay whose source
account was removed, and is reported, not judged.
"""

import argparse
import csv
import datetime as dt
import gzip
import json
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRANSFORMS = ["none", "shuffle", "shift1d", "shift7d", "utc", "thin30"]
# Transforms that keep every fact a detector may use.
NEUTRAL = {"shuffle", "shift1d", "shift7d", "utc"}


def honest_accounts(validation):
    with open(os.path.join(validation, "labels.csv"), newline="") as f:
        return {r["id"] for r in csv.DictReader(f)
                if r["kind"] == "account" and r["label"] == "honest"}


def shifted(ts, delta):
    return (dt.datetime.fromisoformat(ts.replace("Z", "+00:00")) + delta).isoformat()


def as_utc(ts):
    t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    frac = f".{t.microsecond:06d}" if t.microsecond else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def transform(kind, lines, honest, rng):
    drop = {a for a in sorted(honest) if rng.random() < 0.3} if kind == "thin30" else set()
    out = []
    for line in lines:
        if kind == "none":
            out.append(line)
            continue
        e = json.loads(line)
        if kind == "shift1d":
            e["ts"] = shifted(e["ts"], dt.timedelta(days=1))
        elif kind == "shift7d":
            e["ts"] = shifted(e["ts"], dt.timedelta(days=7))
        elif kind == "utc":
            e["ts"] = as_utc(e["ts"])
        elif kind == "thin30" and e.get("account_id") in drop:
            continue
        out.append(json.dumps(e, ensure_ascii=False, separators=(",", ":")))
    if kind == "shuffle":
        rng.shuffle(out)
    return out


def score(validation, findings):
    """The scorer's summary rows: {(detector, level): (prec, recall)} and
    the honest lines."""
    out = subprocess.run(
        [sys.executable, os.path.join(validation, "score.py"),
         "--labels", os.path.join(validation, "labels.csv"),
         "--groups", os.path.join(validation, "groups.csv"),
         "--findings", findings],
        capture_output=True, text=True, check=True).stdout
    figures, honest = {}, []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 9 and parts[1] in ("account", "patrol") and parts[0] != "detector":
            figures[(parts[0], parts[1])] = (parts[7], parts[8])
        elif line.startswith("honest "):
            honest.append(line.split(":", 1)[1].strip())
    return figures, honest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groundtruth", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "groundtruth"))
    ap.add_argument("--validation", default=os.path.join(ROOT, "..", "shared", "data", "validation"))
    ap.add_argument("--work", default="/tmp/groundtruth-invariance")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    lines = gzip.open(os.path.join(args.validation, "events.ndjson.gz"), "rt").read().splitlines()
    honest = honest_accounts(args.validation)
    kinds = [k for k in TRANSFORMS if not args.only or k in args.only.split(",")]
    results = {}
    for kind in kinds:
        events = os.path.join(args.work, f"{kind}.ndjson.gz")
        with gzip.open(events, "wt") as f:
            f.write("\n".join(transform(kind, lines, honest, random.Random(7))) + "\n")
        findings = os.path.join(args.work, f"{kind}.findings.ndjson")
        subprocess.run([args.groundtruth, "detect", "--input", events, "--output", findings],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results[kind] = score(args.validation, findings)
    keys = sorted({k for figures, _ in results.values() for k in figures})
    print(f"{'detector':18} {'level':8} " + " ".join(f"{k:>13}" for k in kinds))
    for key in keys:
        cells = [("P%s R%s" % results[k][0][key]) if key in results[k][0] else "-" for k in kinds]
        print(f"{key[0]:18} {key[1]:8} " + " ".join(f"{c:>13}" for c in cells))
    for k in kinds:
        print(f"{k}: honest flagged: " + "; ".join(results[k][1]))
    base = results.get("none")
    changed = [k for k in kinds if k in NEUTRAL and base and results[k] != base]
    if changed:
        print(f"changed by a transform that must not change anything: {', '.join(changed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
