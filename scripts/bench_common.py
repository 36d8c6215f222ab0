"""Shared by the scripts/bench_*.py drivers: comparisons that hold on a shared machine (issue 17).

- `Machine`: records the CPU model, the instruction-set flags that decide speed (bf16, VNNI, AVX-512),
  the core count and the load average before and after, and waits (up to --quiet-wait seconds) for
  the 1-minute load to fall to --max-load per core before starting; if it does not, it warns. What
  decides whether the figures count is the CPU time other processes took while the benchmark ran
  (all CPU time the kernel counts, /proc/stat, less this script's and its children's): the load
  average counts the benchmark's own work, so it cannot tell a quiet machine from a busy one during
  a run. Above --max-other cores on average, the report says the figures are not performance claims.
- `interleave`: runs the compared variants in rounds, A B C A B C ..., rotating which goes first, so
  that drift (another job starting, the CPU warming) hits every variant alike; medians per variant
  and the median of the per-round ratios, which survives drift better than a ratio of medians.

Standard library only.
"""
import os
import statistics
import sys
import time

from cbir_assets import machine

SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def cpu_flags():
    """The speed-relevant instruction sets the kernel lists for this CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return [f for f in SPEED_FLAGS if f in flags]


def native_bf16():
    return any(f in cpu_flags() for f in ("avx512_bf16", "amx_bf16"))


def cpu_seconds_all():
    """CPU seconds every process has used since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (values[0] + values[1] + values[2] + values[5] + values[6] + values[7]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_own():
    """CPU seconds of this script and of every child it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def add_arguments(parser):
    """The options every benchmark driver takes for load handling and interleaving."""
    parser.add_argument("--max-load", type=float, default=0.3,
                        help="1-minute load average per core above which the machine counts as busy (default 0.3)")
    parser.add_argument("--quiet-wait", type=float, default=0,
                        help="seconds to wait for the machine to become quiet before starting (default 0: warn only)")
    parser.add_argument("--max-other", type=float, default=0.05,
                        help="cores that other processes may use on average during the run for its figures to "
                             "count (default 0.05)")


class Machine:
    """The machine and its load around one benchmark run."""

    def __init__(self, max_load_per_core=0.3, quiet_wait=0.0, log=sys.stderr, max_other_cores=0.05):
        self.cores = os.cpu_count() or 1
        self.max_load = max_load_per_core * self.cores
        self.max_other = max_other_cores
        self.other_cores = None
        self.log = log
        self.description = machine()
        self.flags = cpu_flags()
        self.waited = self._wait_for_quiet(quiet_wait)
        self.load_before = os.getloadavg()
        self.load_after = None
        self._started = (time.monotonic(), cpu_seconds_all(), cpu_seconds_own())
        if self.busy(self.load_before):
            print(f"bench: WARNING: load average {self.load_before[0]:.2f} on {self.cores} cores is above "
                  f"{self.max_load:.2f}: figures from this run are not performance claims; rerun on a quiet machine",
                  file=log)

    def busy(self, load):
        return load[0] > self.max_load

    def _wait_for_quiet(self, seconds):
        started = time.monotonic()
        while seconds > 0 and self.busy(os.getloadavg()) and time.monotonic() - started < seconds:
            time.sleep(5)
        return time.monotonic() - started

    def other_cores_now(self):
        """Cores other processes used on average since this Machine was made."""
        wall = time.monotonic() - self._started[0]
        if wall <= 0:
            return 0.0
        other = (cpu_seconds_all() - self._started[1]) - (cpu_seconds_own() - self._started[2])
        return max(0.0, other / wall)

    def finish(self):
        self.load_after = os.getloadavg()
        self.other_cores = self.other_cores_now()
        return self

    @property
    def quiet(self):
        if self.other_cores is not None:
            return self.other_cores <= self.max_other
        return not self.busy(self.load_before)

    def header(self):
        """One markdown paragraph naming the machine and the load the figures were taken under."""
        after = f"{self.load_after[0]:.2f}" if self.load_after else "?"
        other = f"{self.other_cores:.3f}" if self.other_cores is not None else "?"
        if self.other_cores is None:
            verdict = "judged at the end, by the CPU other processes take meanwhile"
        elif self.quiet:
            verdict = "quiet"
        else:
            verdict = f"BUSY (others used over {self.max_other:.2f} cores): not performance claims, rerun on a quiet machine"
        return (f"Machine: {self.description}; flags: {' '.join(self.flags) or 'none of note'}. "
                f"CPU used by other processes during the run: {other} cores on average; load average (1/5/15 min) "
                f"before {'/'.join(f'{v:.2f}' for v in self.load_before)}, after (1 min) {after} (the benchmark's "
                f"own work included): {verdict}.")

    def as_dict(self):
        return {"machine": self.description, "flags": self.flags, "cores": self.cores,
                "load_before": self.load_before, "load_after": self.load_after,
                "other_cores": self.other_cores, "quiet": self.quiet}


def interleave(variants, rounds, log=sys.stderr):
    """variants: {name: callable() -> number}. Runs `rounds` rounds, each variant once per round, the
    starting variant rotating round by round. Returns {name: [one value per round]}."""
    names = list(variants)
    samples = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            value = variants[name]()
            samples[name].append(value)
            print(f"bench: round {r + 1}/{rounds} {name}: {value:.4g}", file=log)
    return samples


def median(values):
    return statistics.median(values)


def pair_ratio(samples, numerator, denominator):
    """Median over rounds of samples[numerator][i] / samples[denominator][i] (rounds are paired)."""
    return statistics.median(a / b for a, b in zip(samples[numerator], samples[denominator]))


def best_per_round(samples, names):
    """A pseudo-variant: in each round, the best of `names` (e.g. the best Python pipeline)."""
    return [max(values) for values in zip(*(samples[n] for n in names))]
