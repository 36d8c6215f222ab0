#!/usr/bin/env python3
"""Regenerates README.md's "real output" blocks by running the commands they show, so that they
cannot drift from what cbir prints.

A block is a fenced code block right after a marker line `<!-- output: NAME -->`; NAME is one of the
sessions below. Each session runs its commands with bash in a fresh folder (the sample photos, and
for `pipeline` six Corel-1K photos), stdout on a terminal as a user sees it (tables, not tsv) and
stderr apart; a command's stderr is shown before its stdout, as it comes first on a terminal. The
folder's real path is shown as /tmp/session.

    scripts/readme-blocks.py           rewrite the blocks in README.md
    scripts/readme-blocks.py --check   exit 1 (with a diff) when README.md differs; timings masked

CBIR_BIN_DIR (default build/apps) names the binaries, CBIR_SOURCE_DIR (default: this checkout) the
README, models/ and images/.
"""
import argparse
import difflib
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from cbir_assets import corel_images  # noqa: E402

SOURCE = os.path.abspath(os.environ.get("CBIR_SOURCE_DIR", ROOT))
BIN = os.path.abspath(os.environ.get("CBIR_BIN_DIR", os.path.join(SOURCE, "build", "apps")))
SAMPLES = ["cat1", "cat2", "dog1", "dog2", "dog3", "person1", "person2"]
SHOWN_FOLDER = "/tmp/session"

# name -> (folder layout, commands). Layouts: "images" (the samples in images/), "photos" (the
# samples and Corel-1K 70, 71, 700-703 in photos/).
SESSIONS = {
    "session": ("images", [
        "cbir index ./images",
        "cbir query images/dog1.jpg --top-k 10",
    ]),
    "pipeline": ("photos", [
        'find photos -name "*.jpg" -print0 | cbir index - -0',
        "cbir query photos/dog1.jpg -k 4",
        'cbir query photos/dog1.jpg -k 5 --format jsonl | python3 -c "import sys, json; '
        '[print(r[\\"path\\"]) for r in map(json.loads, sys.stdin) if r[\\"distance\\"] < 20]"',
        "cbir similarity photos/dog1.jpg photos/dog2.jpg photos/cat2.jpg",
        "mkdir photos/old && mv photos/70.jpg photos/old/ && rm photos/71.jpg",
        "cbir index photos --prune",
        "cbir check",
        "cbir info --format tsv | head -5",
    ]),
}
COREL_PHOTOS = ["70", "71", "700", "701", "702", "703"]


def prepare(folder, layout):
    target = os.path.join(folder, layout)
    os.makedirs(target)
    for name in SAMPLES:
        shutil.copy(os.path.join(SOURCE, "images", name + ".jpg"), target)
    if layout == "photos":
        corel = corel_images()
        if corel is None:
            return False
        for name in COREL_PHOTOS:
            shutil.copy(os.path.join(corel, name + ".jpg"), target)
    return True


def run_on_terminal(command, cwd, env):
    """(stdout as a terminal shows it, stderr) of one shell command."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=follower,
                               stderr=subprocess.PIPE)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    err = process.stderr.read()
    process.wait(timeout=600)
    return out.decode().replace("\r\n", "\n"), err.decode()


def run_session(name):
    layout, commands = SESSIONS[name]
    folder = tempfile.mkdtemp(prefix="cbir-readme-")
    try:
        if not prepare(folder, layout):
            return None
        env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
        env["CBIR_MODEL"] = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
        lines = []
        for command in commands:
            out, err = run_on_terminal(command, folder, env)
            lines.append("$ " + command)
            lines.extend((err + out).splitlines())
        return "\n".join(lines).replace(os.path.realpath(folder), SHOWN_FOLDER).replace(folder, SHOWN_FOLDER)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


BLOCK = re.compile(r"(<!-- output: (\w+) -->\n```\n)(.*?)(\n```)", re.S)


def masked(text):
    """Timings and rates vary from run to run: compared as placeholders."""
    return re.sub(r"\d+\.\d+ s, \d+\.\d+ images/s", "T s, R images/s", text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of rewriting; exit 1 on a difference")
    args = parser.parse_args()
    readme_path = os.path.join(SOURCE, "README.md")
    with open(readme_path) as f:
        readme = f.read()
    names = [m.group(2) for m in BLOCK.finditer(readme)]
    unknown = [n for n in names if n not in SESSIONS]
    if unknown or not names:
        sys.exit(f"readme-blocks: README.md marks {unknown or 'no'} blocks this script knows")
    outputs = {}
    for name in names:
        output = run_session(name)
        if output is None:
            print(f"readme-blocks: {name}: skipped (Corel-1K not found)", file=sys.stderr)
        outputs[name] = output

    def replace(match):
        output = outputs[match.group(2)]
        return match.group(0) if output is None else match.group(1) + output + match.group(4)

    updated = BLOCK.sub(replace, readme)
    if args.check:
        if masked(updated) == masked(readme):
            print(f"readme-blocks: {len(names)} blocks match what cbir prints")
            return 0
        sys.stdout.writelines(difflib.unified_diff(masked(readme).splitlines(True), masked(updated).splitlines(True),
                                                   "README.md", "what cbir prints"))
        return 1
    if updated != readme:
        with open(readme_path, "w") as f:
            f.write(updated)
    print(f"readme-blocks: {len(names)} blocks written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
