#!/usr/bin/env python3
"""Kills `cbir index` with SIGKILL at random moments and checks the store after each kill.

As a script (scripts/crash-test.sh): --kills N (default 30) over Corel-1K. Under ctest: a shorter
run (--kills 6 over 120 Corel images). Each round: start `cbir index`, kill -9 it after a random
delay, then `cbir check` must pass and the number of rows must never go down; at the end one
uninterrupted run must report every image and `cbir check` must pass again. A last round sends
SIGINT instead and expects a clean stop (exit 130) with its message."""
import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CBIR = os.environ.get("CBIR_BIN_DIR", os.path.join(ROOT, "build", "apps")) + "/cbir"
MODEL = os.path.join(ROOT, "models", "resnet18-untrained-features.pt")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from cbir_assets import corel_images  # noqa: E402


def corel():
    folder = corel_images()
    if folder is None:
        sys.exit("crash test: Corel-1K not found ($CBIR_ASSETS or ../shared/assets)")
    return folder


def rows(store):
    path = os.path.join(store, "catalogue.sqlite")
    if not os.path.exists(path):
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM images").fetchone()[0]


def check(store, env):
    r = subprocess.run([CBIR, "check", "--store", store], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"crash test: cbir check failed:\n{r.stderr}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--images", default=None)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    tmp = tempfile.mkdtemp(prefix="cbir-crash-")
    try:
        source = args.images or corel()
        photos = os.path.join(tmp, "photos")
        os.makedirs(photos)
        names = sorted(n for n in os.listdir(source) if n.lower().endswith(".jpg"))
        if args.limit:
            names = names[:args.limit]
        for n in names:
            shutil.copy(os.path.join(source, n), os.path.join(photos, n))
        store = os.path.join(tmp, "store")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        env["CBIR_MODEL"] = MODEL
        before = 0
        for kill in range(args.kills):
            process = subprocess.Popen([CBIR, "index", photos, "--store", store, "-q", "--batch", "4"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(random.uniform(0.05, 2.5))
            process.send_signal(signal.SIGKILL)
            process.wait()
            if not os.path.exists(os.path.join(store, "catalogue.sqlite")):
                continue  # killed before the store existed
            check(store, env)
            now = rows(store)
            if now < before:
                sys.exit(f"crash test: kill {kill + 1} lost committed rows ({before} -> {now})")
            print(f"kill {kill + 1}: {now} of {len(names)} committed, check passed", flush=True)
            before = now
        # A polite stop: Ctrl-C ends at a batch boundary, says so, and exits 130.
        process = subprocess.Popen([CBIR, "index", photos, "--store", store, "--batch", "4"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        if process.returncode == 130:
            if "interrupted" not in err:
                sys.exit(f"crash test: SIGINT exit without the message:\n{err}")
        elif process.returncode != 0:
            sys.exit(f"crash test: SIGINT run failed ({process.returncode}):\n{err}")
        check(store, env)
        final = subprocess.run([CBIR, "index", photos, "--store", store], capture_output=True, text=True, env=env)
        if final.returncode != 0 or f"; {len(names)} images in" not in final.stderr:
            sys.exit(f"crash test: the final run did not complete with {len(names)} images:\n{final.stderr}")
        check(store, env)
        if rows(store) != len(names):
            sys.exit(f"crash test: {rows(store)} rows, expected {len(names)}")
        print(f"crash test: {args.kills} kills + 1 SIGINT, final count {len(names)}, check passed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
