"""Where the project's Python scripts and tests find what they share: the assets folder (as
scripts/fetch-assets.sh looks for it) and a description of the machine for benchmark reports."""
import os
import platform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corel_images():
    """Corel-1K's images folder in $CBIR_ASSETS or ../shared/assets beside the checkout, or None."""
    for base in (os.environ.get("CBIR_ASSETS", ""), os.path.join(ROOT, "..", "shared", "assets")):
        folder = os.path.join(base, "datasets", "corel1k", "images")
        if base and os.path.isdir(folder):
            return folder
    return None


def machine():
    """CPU model, cores, memory and kernel: every benchmark figure names the machine it came from."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(next(l.split()[1] for l in f if l.startswith("MemTotal")))
    return f"{model}, {os.cpu_count()} cores, {mem_kb / 1048576:.0f} GiB, {platform.system()} {platform.release()}"
