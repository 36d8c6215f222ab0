#pragma once
// The processes of one MPI job (mpirun, or srun --mpi=pmix under Slurm) as cbir uses them: rank 0
// talks to the user, the others search or index their shards. MPI lives in a plugin
// (libcbir_mpi.so), opened only when the environment says this process is one rank of several, so
// a cbir started alone never loads it and starts no slower.
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cbir {

// This process's place in a parallel job, from the launcher's environment: Open MPI's mpirun
// (OMPI_COMM_WORLD_RANK/SIZE), a PMI/PMIx launcher (PMI_RANK/PMI_SIZE, PMIX_RANK), or a Slurm job
// step (srun: SLURM_PROCID of SLURM_STEP_NUM_TASKS). nullopt for a process started alone, or alone
// in its job (size 1). A batch script's own process is not a job step and counts as alone.
struct JobPlacement {
    int rank = 0;
    int size = 1;
    bool mpi = false;  // launched by an MPI launcher (MPI can be initialised), not only by srun
};
std::optional<JobPlacement> job_placement_from_environment();

class Communicator {
public:
    virtual ~Communicator() = default;  // finalises MPI
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // Rank `root`'s bytes, on every rank. A rank that waits polls with a short sleep instead of
    // spinning in MPI (a blocking wait burns a core).
    virtual void broadcast(std::string& bytes, int root) = 0;
    // Every rank's bytes in rank order, on `root` (empty on the others); polls like broadcast.
    virtual std::vector<std::string> gather(const std::string& mine, int root) = 0;
    // Ends every rank of the job with this exit code: a job never goes on with a rank missing.
    [[noreturn]] virtual void abort(int code) = 0;
};

// Joins the MPI job this process was launched in. Throws cbir::Error when MPI cannot be started.
std::unique_ptr<Communicator> join_mpi_job();

}  // namespace cbir

extern "C" {
// The plugin's entry point: a new Communicator (MPI initialised) or null with a message in error.
using cbir_mpi_join_fn = cbir::Communicator* (*)(char* error, size_t error_size);
}
inline constexpr const char* kMpiPluginEntryPoint = "cbir_mpi_join";
inline constexpr const char* kMpiPluginFileName = "libcbir_mpi.so";
