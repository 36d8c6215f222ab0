#include <cstdlib>
#include <string>

#include "cluster/communicator.h"
#include "util/error.h"
#include "util/plugin.h"

namespace cbir {
namespace {

std::optional<int> env_int(const char* name) {
    const char* value = std::getenv(name);
    if (!value || !*value) return std::nullopt;
    char* end = nullptr;
    const long parsed = std::strtol(value, &end, 10);
    if (*end != '\0' || parsed < 0 || parsed > 1'000'000) return std::nullopt;
    return static_cast<int>(parsed);
}

std::optional<JobPlacement> placement(std::optional<int> rank, std::optional<int> size, bool mpi) {
    if (!rank || !size || *size < 2 || *rank >= *size) return std::nullopt;
    return JobPlacement{*rank, *size, mpi};
}

}  // namespace

std::optional<JobPlacement> job_placement_from_environment() {
    if (auto p = placement(env_int("OMPI_COMM_WORLD_RANK"), env_int("OMPI_COMM_WORLD_SIZE"), true)) return p;
    if (auto p = placement(env_int("PMI_RANK"), env_int("PMI_SIZE"), true)) return p;
    // srun sets the step's variables only in a job step, never in the batch script's own process.
    if (env_int("SLURM_STEP_ID") || env_int("SLURM_STEPID")) {
        const bool pmix = env_int("PMIX_RANK").has_value();
        if (auto p = placement(env_int("SLURM_PROCID"), env_int("SLURM_STEP_NUM_TASKS"), pmix)) return p;
        if (auto p = placement(env_int("SLURM_PROCID"), env_int("SLURM_NTASKS"), pmix)) return p;
    }
    return std::nullopt;
}

std::unique_ptr<Communicator> join_mpi_job() {
    static const PluginSpec spec{kMpiPluginFileName, "CBIR_MPI_PLUGIN",
#ifdef CBIR_MPI_PLUGIN_BUILD_PATH
                                 CBIR_MPI_PLUGIN_BUILD_PATH,
#else
                                 nullptr,
#endif
                                 kMpiPluginEntryPoint, true, "the MPI plugin"};
    auto join = reinterpret_cast<cbir_mpi_join_fn>(open_plugin(spec));
    char error[1024] = {0};
    Communicator* communicator = join(error, sizeof error);
    if (!communicator) throw Error(error);
    return std::unique_ptr<Communicator>(communicator);
}

}  // namespace cbir
