#!/usr/bin/env python3
"""Side-by-side spam classifier benchmark: Portcullis, bogofilter, SpamAssassin and rspamd.

Called by bench/classifier.sh (which installs the peers, writes the corpus and builds Portcullis).
Every tool learns the same training messages and classifies the same held-out messages:

  train: spam-1, easy-ham-1, the older half of hard-ham-1 (by file name)
  test:  spam-2, easy-ham-2, the newer half of hard-ham-1

A leading mbox "From " line (in some corpus files) is removed for every tool alike: mail arriving
over SMTP never has one. For each tool it prints the false-positive rate on ham, the false-negative
rate on spam, and messages classified per second per core (messages / CPU seconds of every process
doing the classifying, start-up and model loading included; for the two tools whose pass takes about a
second, Portcullis and bogofilter, the median of three passes).

  Portcullis: `portcullis learn`, then `portcullis scan --offline --json` with the default
              configuration (every offline check on); spam = any action but accept (tag or more).
  bogofilter: `-s`/`-n` to learn, `-t -B` to classify; spam = "S" or "U" (unsure counted as spam).
  SpamAssassin: `sa-learn`, then Mail::SpamAssassin in one Perl process with local tests only
              (network tests off), Bayes on; spam = score >= required_score (5).
  rspamd: a private instance (own Redis for Bayes, network modules off, DNS pointed nowhere),
              `rspamc learn_spam|learn_ham`, then `rspamc` over the test set; spam = action other
              than "no action" (add header or more).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

from rspamd_private import PrivateRspamd

CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------- corpus

def split_corpus(corpus, work):
    """Copy the corpus into work/split/{train,test}/{spam,ham}, mbox From_ lines removed."""
    out = os.path.join(work, "split")
    groups = {
        ("train", "spam"): ["spam-1"],
        ("train", "ham"): ["easy-ham-1"],
        ("test", "spam"): ["spam-2"],
        ("test", "ham"): ["easy-ham-2"],
    }
    files = {k: [os.path.join(corpus, g, f) for g in gs for f in sorted(os.listdir(os.path.join(corpus, g)))]
             for k, gs in groups.items()}
    hard = sorted(os.listdir(os.path.join(corpus, "hard-ham-1")))
    half = len(hard) // 2
    files[("train", "ham")] += [os.path.join(corpus, "hard-ham-1", f) for f in hard[:half]]
    files[("test", "ham")] += [os.path.join(corpus, "hard-ham-1", f) for f in hard[half:]]
    sets = {}
    for (phase, cls), paths in files.items():
        d = os.path.join(out, phase, cls)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        sets[(phase, cls)] = []
        for p in paths:
            with open(p, "rb") as f:
                raw = f.read()
            if raw.startswith(b"From "):
                raw = raw[raw.index(b"\n") + 1:]
            dst = os.path.join(d, os.path.basename(p))
            with open(dst, "wb") as f:
                f.write(raw)
            sets[(phase, cls)].append(dst)
    return out, sets


# -------------------------------------------------------------------------------------- measuring

def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# Classifying passes timed for the tools whose pass takes about a second (Portcullis, bogofilter): on a
# shared machine one such pass moves by a fifth or more from run to run, so the pass is repeated and the
# median CPU time taken. The slow tools (seconds to minutes per pass) run once.
REPEAT = 3


def timed_passes(classify):
    """(what the first pass returned, the median CPU seconds of REPEAT passes); every pass must agree."""
    first, times = None, []
    for _ in range(REPEAT):
        before = children_cpu()
        got = classify()
        times.append(children_cpu() - before)
        if first is None:
            first = got
        elif got != first:
            raise SystemExit("a classifying pass disagreed with the first one")
    return first, sorted(times)[len(times) // 2]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def proc_tree_cpu(root_pid):
    """CPU seconds (user + system, reaped children included) of a process and its descendants."""
    parents, cpu = {}, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(pid)] = int(fields[1])
        cpu[int(pid)] = sum(int(x) for x in fields[11:15]) / CLK
    total, todo = 0.0, [root_pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += [c for c, pp in parents.items() if pp == p]
    return total


class Result:
    def __init__(self, name, ham_flags, spam_flags, cpu, train_s, note=""):
        self.name = name
        self.nham, self.fp = len(ham_flags), sum(ham_flags)
        self.nspam, self.fn = len(spam_flags), sum(1 for s in spam_flags if not s)
        self.cpu, self.train_s, self.note = cpu, train_s, note

    def row(self):
        n = self.nham + self.nspam
        rate = n / self.cpu if self.cpu > 0 else float("nan")
        return (f"| {self.name} | {100 * self.fp / self.nham:.2f}% ({self.fp}/{self.nham}) "
                f"| {100 * self.fn / self.nspam:.2f}% ({self.fn}/{self.nspam}) | {rate:,.0f} "
                f"| {self.train_s:.1f} | {self.note} |")


def chunks(paths, n=500):
    for i in range(0, len(paths), n):
        yield paths[i:i + n]


# ------------------------------------------------------------------------------------ Portcullis

BAYES_SPAM = ("BAYES_95", "BAYES_99", "BAYES_999")

def portcullis(binary, split_dir, sets, work):
    data = os.path.join(work, "portcullis-data")
    shutil.rmtree(data, ignore_errors=True)
    cfg = os.path.join(work, "portcullis.toml")
    with open(cfg, "w") as f:
        f.write(f'data_dir = "{data}"\n')
    base = [binary, "--config", cfg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    t = time.monotonic()
    for cls in ("spam", "ham"):
        run(base + ["learn", f"--{cls}", os.path.join(split_dir, "train", cls)], env=env,
            stdout=subprocess.DEVNULL)
    train_s = time.monotonic() - t
    def classify():
        flags, bayes = {}, {}
        for cls in ("ham", "spam"):
            out = run(base + ["scan", "--offline", "--json", os.path.join(split_dir, "test", cls)], env=env,
                      stdout=subprocess.PIPE).stdout
            rows = [json.loads(line) for line in out.splitlines()]
            flags[cls] = [r["action"] != "accept" for r in rows]
            bayes[cls] = [any(s["name"] in BAYES_SPAM for s in r["symbols"]) for r in rows]
            if len(rows) != len(sets[("test", cls)]):
                raise SystemExit(f"portcullis scanned {len(rows)} of {len(sets[('test', cls)])} {cls}")
        return flags, bayes
    (flags, bayes), cpu = timed_passes(classify)
    return [Result("Portcullis", flags["ham"], flags["spam"], cpu, train_s,
                   "spam = tag or more (score >= 4), all offline checks on"),
            Result("Portcullis, classifier alone", bayes["ham"], bayes["spam"], cpu, train_s,
                   "spam = BAYES_95 or higher (p >= 0.95), from the same run")]


# ------------------------------------------------------------------------------------ bogofilter

def bogofilter(sets, work):
    db = os.path.join(work, "bogofilter")
    shutil.rmtree(db, ignore_errors=True)
    os.makedirs(db)
    t = time.monotonic()
    for cls, flag in (("spam", "-s"), ("ham", "-n")):
        for part in chunks(sets[("train", cls)]):
            run(["bogofilter", "-d", db, flag, "-B"] + part)
    train_s = time.monotonic() - t
    def classify():
        flags = {}
        for cls in ("ham", "spam"):
            verdicts = []
            for part in chunks(sets[("test", cls)]):
                out = subprocess.run(["bogofilter", "-d", db, "-t", "-B"] + part, stdout=subprocess.PIPE).stdout
                verdicts += [line.split()[0] in (b"S", b"U") for line in out.splitlines() if line.strip()]
            flags[cls] = verdicts
        return flags
    flags, cpu = timed_passes(classify)
    return Result("bogofilter", flags["ham"], flags["spam"], cpu, train_s, "spam = S or U (unsure as spam)")


# ---------------------------------------------------------------------------------- SpamAssassin

SA_CHECK = r"""
use strict; use warnings;
use Mail::SpamAssassin;
my $prefs = shift @ARGV;
my $sa = Mail::SpamAssassin->new({ userprefs_filename => $prefs, local_tests_only => 1,
                                   dont_copy_prefs => 1 });
$sa->init(1);
while (my $file = <STDIN>) {
    chomp $file;
    open(my $fh, '<', $file) or die "$file: $!";
    my @lines = <$fh>; close $fh;
    my $mail = $sa->parse(\@lines);
    my $status = $sa->check($mail);
    printf "%s %.2f\n", ($status->is_spam ? "spam" : "ham"), $status->get_score;
    $status->finish; $mail->finish;
}
"""


def spamassassin(sets, work):
    home = os.path.join(work, "spamassassin")
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home)
    prefs = os.path.join(home, "user_prefs")
    with open(prefs, "w") as f:
        f.write(f"use_bayes 1\nbayes_auto_learn 0\nbayes_path {home}/bayes\nskip_rbl_checks 1\n"
                "use_razor2 0\nuse_pyzor 0\nuse_auto_whitelist 0\n")
    t = time.monotonic()
    for cls in ("spam", "ham"):
        d = os.path.dirname(sets[("train", cls)][0])
        run(["sa-learn", "-p", prefs, "--no-sync", f"--{cls}", d], stdout=subprocess.DEVNULL)
    run(["sa-learn", "-p", prefs, "--sync"], stdout=subprocess.DEVNULL)
    train_s = time.monotonic() - t
    flags = {}
    before = children_cpu()
    for cls in ("ham", "spam"):
        out = subprocess.run(["perl", "-e", SA_CHECK, prefs], input="\n".join(sets[("test", cls)]).encode(),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
        flags[cls] = [line.split()[0] == b"spam" for line in out.splitlines()]
    cpu = children_cpu() - before
    return Result("SpamAssassin", flags["ham"], flags["spam"], cpu, train_s,
                  "Bayes on, local tests only; spam = score >= 5")


# ----------------------------------------------------------------------------------------- rspamd

def rspamd(sets, work):
    with PrivateRspamd(os.path.join(work, "rspamd")) as r:
        t = time.monotonic()
        for cls in ("spam", "ham"):
            r.learn(cls, os.path.dirname(sets[("train", cls)][0]))
        train_s = time.monotonic() - t
        flags = {}
        before = proc_tree_cpu(r.pid) + children_cpu()
        for cls in ("ham", "spam"):
            d = os.path.dirname(sets[("test", cls)][0])
            out = run(["rspamc", "-h", f"127.0.0.1:{r.ports['normal']}", "-n", "2", "-j", "symbols", d],
                      stdout=subprocess.PIPE).stdout
            flags[cls] = rspamd_actions(out)
        cpu = proc_tree_cpu(r.pid) + children_cpu() - before
    return Result("rspamd", flags["ham"], flags["spam"], cpu, train_s,
                  "Bayes on, network modules off; spam = add header or more")


def rspamd_actions(out):
    """Spam flags from `rspamc -j` output: one JSON object per message (possibly pretty-printed)."""
    decoder, text, pos, flags = json.JSONDecoder(), out.decode("utf-8", "replace"), 0, []
    while True:
        start = text.find("{", pos)
        if start < 0:
            return flags
        obj, pos = decoder.raw_decode(text, start)
        flags.append(obj.get("action", "no action") not in ("no action", "greylist"))


# ------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="directory written by corpus.sh")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--portcullis", required=True, help="the release binary")
    ap.add_argument("--only", default="portcullis,bogofilter,spamassassin,rspamd")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    split_dir, sets = split_corpus(args.corpus, args.work)
    print(f"train: {len(sets[('train', 'spam')])} spam, {len(sets[('train', 'ham')])} ham; "
          f"test: {len(sets[('test', 'spam')])} spam, {len(sets[('test', 'ham')])} ham", flush=True)
    tools = {
        "portcullis": lambda: portcullis(args.portcullis, split_dir, sets, args.work),
        "bogofilter": lambda: bogofilter(sets, args.work),
        "spamassassin": lambda: spamassassin(sets, args.work),
        "rspamd": lambda: rspamd(sets, args.work),
    }
    results = []
    for name in args.only.split(","):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        got = tools[name]()
        for r in got if isinstance(got, list) else [got]:
            results.append(r)
            print(r.row(), file=sys.stderr, flush=True)
    print("| tool | false positives (ham) | false negatives (spam) | messages/s per core | training s | notes |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(r.row())


if __name__ == "__main__":
    main()
