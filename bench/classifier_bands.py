#!/usr/bin/env python3
"""Tuning aid, for training mail only: the BAYES_* band scores of rules/default/scores.toml.

Inputs:
  - DUMP files of `crates/classifier/examples/eval.rs` (each line: path, raw score of a message the model
    did not learn; spam is what lies in a directory whose name starts with `spam`), e.g. one from 5-fold cross-validation and some from older/newer splits of the
    training mail (FOLDS=0 FRACTION=...);
  - the other checks' verdicts on the same messages, without the classifier: `portcullis scan --offline
    --json` with `[classifier] enabled = false`, one JSON line per message (`--rules FILE`, repeatable).

It reads each raw score as a probability with the calibration given (`--calibration A,B`, as
`classifier::calibrated`), takes its band as the `bayes` analyzer does, and searches band scores
(non-decreasing from BAYES_00 to BAYES_999, on a 0.5 grid) for the fewest spam left below the tag
threshold while every DUMP file keeps its ham tagged at or below `--max-fp` (a fraction); the search is
exhaustive (a dynamic programme over the bands). A message a
forced action flags without the classifier stays flagged. Prints the scores and each file's errors.

  python3 bench/classifier_bands.py --calibration 2.3,2.6 --rules rules.json dump-cv.txt dump-t0.5.txt

A DUMP file may carry its own budget as PATH:FRACTION (e.g. `dump-sender.txt:0.01` for a split whose
checked mail comes from senders never learned, `FOLDS=5 GROUP=sender`).

With `--scores` (ten comma-separated band scores, BAYES_00 first, e.g. the shipped ones) nothing is
searched: each file's errors under those scores are printed, and with `--show-flagged N` the first N hams
each file's verdict tags, with their band and the other checks' symbols that scored: the way to read the
verdict's false positives on held-out training mail one by one.
"""

import argparse
import json
import math
import os

BANDS = [(0.01, "BAYES_00"), (0.05, "BAYES_05"), (0.20, "BAYES_20"), (0.40, "BAYES_40"),
         (0.60, "BAYES_50"), (0.80, "BAYES_60"), (0.95, "BAYES_80"), (0.99, "BAYES_95"),
         (0.999, "BAYES_99"), (math.inf, "BAYES_999")]
GRID = [x / 2 for x in range(-6, 13)]  # -3.0 .. 6.0: no band takes back more than 3 points (see the doc)


def band(p):
    return next(i for i, (upper, _) in enumerate(BANDS) if p < upper)


def load_rules(paths, symbols=None):
    """basename -> (score without the classifier, flagged by a forced action); with `symbols` (a dict),
    also basename -> the names of the symbols that scored, into it."""
    out = {}
    for path in paths:
        for line in open(path):
            r = json.loads(line)
            forced = r["action"] != "accept" and r["score"] < TAG
            name = os.path.basename(r["path"])
            out[name] = (r["score"], forced)
            if symbols is not None:
                symbols[name] = [f"{x['name']} ({x['score']:g})" for x in r["symbols"] if x["score"] != 0]
    return out


def load_dump(path, rules, a, b):
    """(is spam, band, rules score, forced) per message."""
    rows = []
    for line in open(path):
        p, raw = line.split()
        score, forced = rules[os.path.basename(p)]
        prob = 1 / (1 + math.exp(-(a * float(raw) + b)))
        rows.append((os.path.basename(os.path.dirname(p)).startswith("spam"), band(prob), score, forced))
    return rows


def errors(rows, scores):
    fp = fn = 0
    for spam, bnd, rule, forced in rows:
        flagged = forced or rule + scores[bnd] >= TAG
        fp += (not spam) and flagged
        fn += spam and not flagged
    return fp, fn


def search(sets, max_fps):
    """The band scores (non-decreasing, from GRID) with the fewest spam missed over all sets while each
    set's flagged ham stays within its budget; ties go to the smaller scores. Each message is in one
    band, so errors add up band by band: a dynamic programme over the bands, its state the score of
    the band before and the ham flagged so far in each set. `None` if no scores keep every budget."""
    budgets = [math.floor(m * sum(1 for r in rows if not r[0])) for rows, m in zip(sets, max_fps)]
    # cost[i][v] = (ham flagged per set, spam missed) of band i's messages at score GRID[v]
    cost = [[([0] * len(sets), 0) for _ in GRID] for _ in BANDS]
    for k, rows in enumerate(sets):
        for spam, bnd, rule, forced in rows:
            for v, score in enumerate(GRID):
                flagged = forced or rule + score >= TAG
                fps, fn = cost[bnd][v]
                if not spam and flagged:
                    fps[k] += 1
                elif spam and not flagged:
                    cost[bnd][v] = (fps, fn + 1)
    # states: (last v, ham flagged per set) -> (spam missed, sum of |score|, scores so far)
    states = {(0, (0,) * len(sets)): (0, 0.0, [])}
    for band_cost in cost:
        nxt = {}
        for (last, fps), (fn, size, scores) in states.items():
            for v in range(last, len(GRID)):
                add_fp, add_fn = band_cost[v]
                total = tuple(a + b for a, b in zip(fps, add_fp))
                if any(t > b for t, b in zip(total, budgets)):
                    continue
                value = (fn + add_fn, size + abs(GRID[v]), scores + [GRID[v]])
                key = (v, total)
                if key not in nxt or value[:2] < nxt[key][:2]:
                    nxt[key] = value
        states = nxt
    if not states:
        return None
    return min(states.values(), key=lambda x: x[:2])[2]


TAG = 4.0


def show_flagged(path, rows, scores, symbols, limit):
    """The first `limit` hams of a DUMP file the verdict tags under `scores`: band and scoring symbols."""
    names = [line.split()[0] for line in open(path)]
    shown = 0
    for name, (spam, bnd, rule, forced) in zip(names, rows):
        if spam or not (forced or rule + scores[bnd] >= TAG) or shown >= limit:
            continue
        shown += 1
        base = os.path.basename(name)
        print(f"  {os.path.basename(os.path.dirname(name))}/{base} {BANDS[bnd][1]} "
              f"{' '.join(symbols.get(base, []))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", default="2.3,2.6", help="A,B of classifier::calibrated")
    ap.add_argument("--rules", action="append", required=True, help="scan --json output without the classifier")
    ap.add_argument("--max-fp", type=float, default=0.001, help="tagged ham allowed per DUMP file (fraction)")
    ap.add_argument("--scores", help="evaluate these band scores (BAYES_00 first, comma-separated) instead")
    ap.add_argument("--show-flagged", type=int, default=0, help="with --scores: list this many tagged hams")
    ap.add_argument("dumps", nargs="+")
    args = ap.parse_args()
    a, b = (float(x) for x in args.calibration.split(","))
    symbols = {}
    rules = load_rules(args.rules, symbols)
    dumps = [d.rsplit(":", 1) if ":" in d else (d, args.max_fp) for d in args.dumps]
    sets = [load_dump(d, rules, a, b) for d, _ in dumps]
    if args.scores:
        best = [float(x) for x in args.scores.split(",")]
        if len(best) != len(BANDS):
            raise SystemExit(f"--scores takes {len(BANDS)} scores, BAYES_00 first")
    else:
        best = search(sets, [float(m) for _, m in dumps])
    if best is None:
        raise SystemExit("no band scores keep every set's ham within the budget")
    for (_, name), s in zip(BANDS, best):
        print(f"{name} = {s}")
    for (path, _), rows in zip(dumps, sets):
        fp, fn = errors(rows, best)
        hams, spams = sum(1 for r in rows if not r[0]), sum(1 for r in rows if r[0])
        print(f"{os.path.basename(path)}: FP {fp}/{hams} ({100 * fp / hams:.2f}%), "
              f"FN {fn}/{spams} ({100 * fn / spams:.2f}%)")
        if args.scores and args.show_flagged:
            show_flagged(path, rows, best, symbols, args.show_flagged)


if __name__ == "__main__":
    main()
