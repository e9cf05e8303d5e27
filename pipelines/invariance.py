#!/usr/bin/env python3
"""The validation world under changes that must not change what is found.

A labelled world scores what the detectors find; it does not say whether
they found it for the right reasons. Each transform below changes something
a detector must not depend on, or thins the population the peers' own
baselines come from. The world is rewritten (and its labels with it, where
ids change or people leave), `groundtruth detect` runs on it, and the
validation world's own scorer scores it.

Changes that must not matter (judged: any changed figure fails the run):
  shuffle   lines in another order (a topic's partitions interleave)
  shift1d   a day later (other weekdays)
  shift7d   a week later
  weeks     11 weeks later: another month and year (2027)
  utc       times written in UTC instead of +08:00
  move      the whole world moved 1,900 km north-west and turned 137
            degrees about its centre, in a local metric frame: distances,
            speeds and shapes kept, degrees and headings changed
  rename    every id renamed by a keyed hash (accounts, devices, networks,
            sessions, apps, patrols, points, routes, referrers, records,
            events), region codes mapped level by level (a city stays one
            city), IP addresses renamed by their /24 with the host kept
  dupes     3% of events sent twice (same event_id)
Changes to the population (reported, not judged):
  thin30    30% of honest people removed
  regions   3 of the world's districts left out (labels follow)
  lostfix   8% of GPS fixes lost

    python3 pipelines/invariance.py [--groundtruth BIN] [--validation DIR]
                                    [--work DIR] [--only NAME,...]

Prints one table: per transform, each detector's precision and recall at the
account level, the patrols', and the honest accounts and patrols flagged.
Exits 1 if a transform that must not matter changes any figure, or if a
change to the population takes any detector below issue 26's bar
(precision 0.95, recall 0.90; honest accounts and patrols flagged at most
1%). CI runs it (tests/tests/truth.rs) when the shared folder is there.
"""

import argparse
import csv
import datetime as dt
import gzip
import hashlib
import json
import math
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRANSFORMS = ["none", "shuffle", "shift1d", "shift7d", "weeks", "utc", "move", "rename", "dupes",
              "thin30", "regions", "lostfix"]
# Transforms that keep every fact a detector may use.
NEUTRAL = {"shuffle", "shift1d", "shift7d", "weeks", "utc", "move", "rename", "dupes"}
EARTH_M = 6_371_000.0
# Top-level and attrs id fields renamed by `rename`, with their new prefix.
ID_FIELDS = {"event_id": "e", "account_id": "a", "device_id": "d", "network_id": "n",
             "session_id": "s", "app_id": "app-"}
# A referrer may be an account (an official's own code): renamed as one.
ATTR_IDS = {"patrol_id": "p", "route_id": "r", "point_id": "pt", "referrer": "a",
            "record_key": "k", "task_id": "t", "target_id": "g"}


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


def new_id(prefix, value):
    return prefix + hashlib.sha256(f"{prefix}|{value}".encode()).hexdigest()[:12]


def level_permutation(level, lo):
    """The pairs lo..99 of one level of a division code, shuffled by a key."""
    pairs = list(range(lo, 100))
    shuffled = pairs[:]
    random.Random(f"region-{level}").shuffle(shuffled)
    return dict(zip(pairs, shuffled))


# Province, city and district, each drawn once.
REGION_LEVELS = (level_permutation("province", 11), level_permutation("city", 1),
                 level_permutation("district", 1))


def new_region(code):
    """Province, city and district each mapped by a keyed permutation of
    their level, so codes never merge and a city stays one city."""
    if len(code) != 6 or not code.isdigit():
        return new_id("region", code)
    pairs = (int(code[0:2]), int(code[2:4]), int(code[4:6]))
    return "".join(f"{perm.get(x, x):02d}" for perm, x in zip(REGION_LEVELS, pairs))


def new_ip(ip):
    if ":" in ip:
        head = ip.split(":")
        return "fd00:" + new_id("", ":".join(head[:4]))[:4] + ":" + ":".join(head[4:] or ["1"])
    parts = ip.split(".")
    if len(parts) != 4:
        return new_id("ip", ip)
    h = int(hashlib.sha256(".".join(parts[:3]).encode()).hexdigest()[:4], 16)
    return f"10.{h >> 8}.{h & 255}.{parts[3]}"


def renamed(e):
    for k, prefix in ID_FIELDS.items():
        if isinstance(e.get(k), str):
            e[k] = new_id(prefix, e[k])
    if isinstance(e.get("region"), str):
        e["region"] = new_region(e["region"])
    if isinstance(e.get("ip"), str):
        e["ip"] = new_ip(e["ip"])
    attrs = e.get("attrs")
    if isinstance(attrs, dict):
        for k, prefix in ATTR_IDS.items():
            if isinstance(attrs.get(k), str):
                attrs[k] = new_id(prefix, attrs[k])
        if isinstance(attrs.get("claimed_region"), str):
            attrs["claimed_region"] = new_region(attrs["claimed_region"])
    return e


class Mover:
    """Positions moved in a local metric frame: metres east and north of the
    old centre, turned, laid down around the new centre."""

    def __init__(self, lines, dlat=17.0, dlon=-20.0, turn_deg=137.0):
        pts = [(e["lat"], e["lon"]) for e in map(json.loads, lines[::50]) if "lat" in e]
        self.lat0 = sum(p[0] for p in pts) / len(pts)
        self.lon0 = sum(p[1] for p in pts) / len(pts)
        self.lat1, self.lon1 = self.lat0 + dlat, self.lon0 + dlon
        self.c, self.s = math.cos(math.radians(turn_deg)), math.sin(math.radians(turn_deg))

    def __call__(self, e):
        if "lat" not in e or "lon" not in e:
            return e
        north = math.radians(e["lat"] - self.lat0) * EARTH_M
        east = math.radians(e["lon"] - self.lon0) * EARTH_M * math.cos(math.radians(e["lat"]))
        east, north = east * self.c - north * self.s, east * self.s + north * self.c
        lat = self.lat1 + math.degrees(north / EARTH_M)
        lon = self.lon1 + math.degrees(east / (EARTH_M * math.cos(math.radians(lat))))
        e["lat"], e["lon"] = round(lat, 8), round(lon, 8)
        return e


def owners(lines):
    """Each account's region (its first event with one) and each patrol's
    account, in one pass over the events."""
    regions, patrols = {}, {}
    for line in lines:
        e = json.loads(line)
        if e.get("region") and e.get("account_id"):
            regions.setdefault(e["account_id"], e["region"])
        p = (e.get("attrs") or {}).get("patrol_id")
        if p:
            patrols.setdefault(p, e.get("account_id"))
    return regions, patrols


def transform(kind, lines, honest, rng, gone=frozenset()):
    drop = {a for a in sorted(honest) if rng.random() < 0.3} if kind == "thin30" else set(gone)
    move = Mover(lines) if kind == "move" else None
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
        elif kind == "weeks":
            e["ts"] = shifted(e["ts"], dt.timedelta(weeks=11))
        elif kind == "move":
            move(e)
        elif kind == "rename":
            renamed(e)
        elif kind == "lostfix" and e.get("kind") == "track_point" and rng.random() < 0.08:
            continue
        elif kind == "utc":
            e["ts"] = as_utc(e["ts"])
        elif kind in ("thin30", "regions") and e.get("account_id") in drop:
            continue
        out.append(json.dumps(e, ensure_ascii=False, separators=(",", ":")))
        if kind == "dupes" and rng.random() < 0.03:
            out.append(out[-1])
    if kind == "shuffle":
        rng.shuffle(out)
    return out


def labels_for(kind, validation, work, gone, patrol_owner):
    """The labels and groups files a transform is scored against: the world's
    own, renamed for `rename`, without the people left out for `regions`."""
    if kind not in ("rename", "regions"):
        return os.path.join(validation, "labels.csv"), os.path.join(validation, "groups.csv")
    out = []
    for name in ("labels.csv", "groups.csv"):
        path = os.path.join(work, f"{kind}.{name}")
        with open(os.path.join(validation, name), newline="") as f, open(path, "w", newline="") as g:
            rows = csv.reader(f)
            w = csv.writer(g)
            w.writerow(next(rows))
            for kind_, ident, value in rows:
                owner = ident if kind_ == "account" else patrol_owner.get(ident)
                if kind == "regions" and owner in gone:
                    continue
                if kind == "rename":
                    prefix = ID_FIELDS["account_id"] if kind_ == "account" else ATTR_IDS["patrol_id"]
                    ident = new_id(prefix, ident)
                w.writerow([kind_, ident, value])
        out.append(path)
    return tuple(out)


def score(validation, findings, labels, groups):
    """The scorer's summary rows: {(detector, level): (prec, recall)} and
    the honest lines."""
    out = subprocess.run(
        [sys.executable, os.path.join(validation, "score.py"),
         "--labels", labels, "--groups", groups,
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
    # `regions`: three districts, drawn, left out with everyone in them.
    regions, patrol_owner = owners(lines)
    districts = sorted(set(regions.values()))
    left_out = set(random.Random(7).sample(districts, min(3, max(len(districts) - 2, 0))))
    gone = frozenset(a for a, r in regions.items() if r in left_out)
    results = {}
    for kind in kinds:
        events = os.path.join(args.work, f"{kind}.ndjson.gz")
        with gzip.open(events, "wt") as f:
            f.write("\n".join(transform(kind, lines, honest, random.Random(7),
                                        gone if kind == "regions" else frozenset())) + "\n")
        findings = os.path.join(args.work, f"{kind}.findings.ndjson")
        subprocess.run([args.groundtruth, "detect", "--input", events, "--output", findings],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        labels, groups = labels_for(kind, args.validation, args.work, gone, patrol_owner)
        results[kind] = score(args.validation, findings, labels, groups)
    if "regions" in kinds:
        print(f"regions: left out {', '.join(sorted(left_out))} ({len(gone)} accounts)")
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
    below = [f"{k}: {why}" for k in kinds if k not in NEUTRAL for why in under_bar(results[k])]
    if below:
        print("below the bar after a change to the population:\n  " + "\n  ".join(below))
    if changed or below:
        sys.exit(1)


def under_bar(result):
    """Where a scored transform misses the bar: P >= 0.95 and R >= 0.90 per
    detector and level, at most 1% of honest accounts and patrols flagged."""
    figures, honest = result
    out = []
    for (det, level), (p, r) in sorted(figures.items()):
        for name, value, bar in (("precision", p, 0.95), ("recall", r, 0.90)):
            try:
                if float(value) < bar:
                    out.append(f"{det} {level} {name} {value} < {bar}")
            except ValueError:
                pass  # "-": nothing to find or nothing flagged
    for line in honest:
        for share in line.replace("(", " ").replace(")", " ").split():
            if share.endswith("%") and float(share[:-1]) > 1.0:
                out.append(f"honest flagged {line}")
    return out


if __name__ == "__main__":
    main()
