#!/usr/bin/env python3
"""A real single-node Slurm cluster, started by the test itself (munged, slurmctld and slurmd on
localhost, every file under a temp folder, stopped by pid afterwards): a 4-task job array indexes
Corel-1K into a 4-shard set; one task is made to fail, the set is then incomplete and says so, and
re-running that task alone with --array=I completes it. Needs slurmctld, slurmd, slurm-client and
munge (scripts/install-deps.sh --test) and root (the daemons run as root here, as in CI)."""
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.environ.get("CBIR_SOURCE_DIR", ".")
MODEL = os.path.realpath(os.path.join(SOURCE, "models", "resnet18-untrained-features.pt"))
CBIR = os.path.realpath(os.path.join(BIN, "cbir"))
sys.path.insert(0, os.path.join(SOURCE, "scripts"))
from cbir_assets import corel_images  # noqa: E402

NEEDED = ["munged", "slurmctld", "slurmd", "sbatch", "sinfo"]
HAVE_SLURM = all(shutil.which(t) or os.path.exists("/usr/sbin/" + t) for t in NEEDED)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


class SingleNodeCluster:
    """munged + slurmctld + slurmd with every path under `root`."""

    def __init__(self, root):
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CBIR_", "SLURM_"))}
        self.host = socket.gethostname().split(".")[0]
        self.munge_dir = os.path.join(root, "munge")
        os.makedirs(self.munge_dir)
        shutil.chown(self.munge_dir, "munge", "munge")
        self.munge_socket = os.path.join(self.munge_dir, "munge.socket")
        self.conf = os.path.join(root, "slurm.conf")
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(root, sub))
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=cbirtest
SlurmctldHost={self.host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={self.host} CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
""")
        self.env["SLURM_CONF"] = self.conf

    def start(self):
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--socket", self.munge_socket,
                        "--pid-file", os.path.join(self.munge_dir, "munged.pid"),
                        "--log-file", os.path.join(self.munge_dir, "munged.log"),
                        "--seed-file", os.path.join(self.munge_dir, "munged.seed")], check=True, env=self.env)
        subprocess.run(["/usr/sbin/slurmctld", "-i"], check=True, env=self.env)
        subprocess.run(["/usr/sbin/slurmd"], check=True, env=self.env)
        wait_for(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                                                   env=self.env).stdout, 60, "the node to be idle")

    def stop(self):
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            try:
                with open(os.path.join(self.root, pid_file)) as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGTERM)
                wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20, pid_file)
            except (OSError, ValueError, AssertionError):
                pass

    def sbatch(self, args):
        return subprocess.run(["sbatch", "--wait"] + args, capture_output=True, text=True, env=self.env, timeout=900)


@unittest.skipUnless(corel_images(), "Corel-1K not found in $CBIR_ASSETS or ../shared/assets")
@unittest.skipUnless(HAVE_SLURM, "Slurm and munge are not installed (scripts/install-deps.sh --test)")
@unittest.skipUnless(os.geteuid() == 0, "the single-node cluster's daemons run as root")
class SlurmJobArray(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cbir-slurm-")
        os.chmod(self.tmp, 0o755)
        self.cluster = SingleNodeCluster(self.tmp)
        self.cluster.start()

    def tearDown(self):
        self.cluster.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_a_job_array_fills_the_set_and_a_failed_task_reruns_alone(self):
        images = os.path.realpath(corel_images())
        store = os.path.join(self.tmp, "corel.set")
        fail_once = os.path.join(self.tmp, "fail-task-2")
        open(fail_once, "w").close()
        script = os.path.join(self.tmp, "index.sbatch")
        with open(script, "w") as f:
            f.write(f"""#!/bin/bash
#SBATCH --job-name=cbir-index
#SBATCH --output={self.tmp}/task-%a.out
#SBATCH --cpus-per-task=1
# A task made to fail, as a node crash would: shard 2 is left without its store.
if [ "$SLURM_ARRAY_TASK_ID" = 2 ] && [ -e {fail_once} ]; then exit 3; fi
exec {CBIR} index {images} --store {store} --shards 4 --shard "$SLURM_ARRAY_TASK_ID" --model {MODEL} --threads 1
""")
        r = self.cluster.sbatch(["--array=0-3", script])
        self.assertNotEqual(r.returncode, 0, "sbatch --wait must report the failed task")
        env = self.cluster.env
        info = subprocess.run([CBIR, "info", "--store", store, "--format", "tsv"], capture_output=True, text=True, env=env)
        facts = {row["key"]: row["value"] for row in csv.DictReader(io.StringIO(info.stdout), delimiter="\t")}
        self.assertEqual(facts["complete"], "no (1 shard without a store)")
        self.assertEqual(facts["shard_0002_images"], "no store yet (run its index task)")
        for task in (0, 1, 3):
            with open(os.path.join(self.tmp, f"task-{task}.out")) as f:
                self.assertIn("indexed", f.read())
        q = subprocess.run([CBIR, "query", os.path.join(images, "0.jpg"), "--store", store], capture_output=True,
                           text=True, env=env)
        self.assertEqual(q.returncode, 2)
        self.assertIn("--shard 2", q.stderr)

        os.remove(fail_once)
        r = self.cluster.sbatch(["--array=2", script])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        info = subprocess.run([CBIR, "info", "--store", store, "--format", "tsv"], capture_output=True, text=True, env=env)
        facts = {row["key"]: row["value"] for row in csv.DictReader(io.StringIO(info.stdout), delimiter="\t")}
        self.assertEqual(facts["complete"], "yes")
        self.assertEqual(facts["images"], "1000")
        check = subprocess.run([CBIR, "check", "--store", store], capture_output=True, text=True, env=env)
        self.assertEqual(check.returncode, 0, check.stderr)
        # A re-run of the whole array resumes: nothing is embedded again.
        r = self.cluster.sbatch(["--array=0-3", script])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for task in range(4):
            with open(os.path.join(self.tmp, f"task-{task}.out")) as f:
                self.assertIn("indexed 0 new, 0 changed", f.read())

        # A Slurm job step: `srun -n 2` ranks take shards 0, 2 and 1, 3 from SLURM_PROCID (no MPI
        # needed to index), and `srun --mpi=pmix` searches the set as one MPI job.
        srun = ["srun", "-n", "2", "--oversubscribe"]
        r = subprocess.run(srun + [CBIR, "index", images, "--store", store], capture_output=True, text=True, env=env,
                           timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("rank 0 of 2: indexed 0 new", r.stderr)
        self.assertIn("rank 1 of 2: indexed 0 new", r.stderr)
        queries = "".join(os.path.join(images, f"{i}.jpg") + "\n" for i in range(0, 1000, 50))
        alone = subprocess.run([CBIR, "query", "-", "--store", store, "--exact", "--format", "tsv", "-q"], input=queries,
                               capture_output=True, text=True, env=env)
        self.assertEqual(alone.returncode, 0, alone.stderr)
        self.assertEqual(len(alone.stdout.splitlines()), 1 + 20 * 10)
        job = subprocess.run(srun + ["--mpi=pmix", CBIR, "query", "-", "--store", store, "--exact", "--format", "tsv",
                                     "-q"], input=queries, capture_output=True, text=True, env=env, timeout=600)
        self.assertEqual(job.returncode, 0, job.stderr)
        self.assertEqual(job.stdout, alone.stdout)


if __name__ == "__main__":
    unittest.main()
