#include "index_command.h"

#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli_common.h"
#include "options.h"
#include "progress.h"
#include "cluster/communicator.h"
#include "pipeline/indexer.h"
#include "shard/set_indexer.h"
#include "util/words.h"
#include "util/error.h"
#include "util/log.h"

namespace cbir::cli {
namespace {

struct IndexFlags {
    std::vector<std::string> inputs;
    bool null_separated = false;
    bool prune = false;
    std::string store;
    std::string model;
    std::string index_kind;
    std::string metric;
    int batch = 8;
    int threads = 0;
    int readers = 0;
    int hnsw_m = IndexSpec{}.hnsw_m;
    int ef_construction = IndexSpec{}.hnsw_ef_construction;
    int nlist = 0;
    int pq_m = IndexSpec{}.pq_m;
    int pq_bits = IndexSpec{}.pq_bits;
    std::string precision;
    int shards = 0;
    std::optional<int> shard;
    bool fast_decode = false;
    Verbosity verbosity;
};

// The shards this process fills: --shard I (a job array task), rank r's share in an MPI job or a
// Slurm step (r, r+R, …), else every shard.
std::vector<int> shards_to_fill(const IndexFlags& flags, int shards) {
    const auto job = job_placement_from_environment();
    if (flags.shard) {
        if (job) throw Error(fmt::format("--shard {} cannot be used in a parallel job of {} ranks (each rank takes its "
                                         "own shards; drop --shard)", *flags.shard, job->size));
        return {*flags.shard};
    }
    if (job) return shards_of_task(shards, job->rank, job->size);
    return {};
}

// The build parameters given on the command line (or in the environment), apart from --index.
IndexParameters given_index_parameters(const IndexFlags& flags, const CLI::App& app) {
    auto given = [&](const char* name) { return app.get_option(name)->count() > 0; };
    IndexParameters p;
    if (given("--hnsw-m")) p.hnsw_m = flags.hnsw_m;
    if (given("--ef-construction")) p.hnsw_ef_construction = flags.ef_construction;
    if (given("--nlist")) p.ivf_nlist = flags.nlist;
    if (given("--pq-m")) p.pq_m = flags.pq_m;
    if (given("--pq-bits")) p.pq_bits = flags.pq_bits;
    return p;
}

int run(const IndexFlags& flags, const std::filesystem::path& exe_dir, const CLI::App& app) {
    apply_verbosity(flags.verbosity);
    require_named_paths_exist(flags.inputs);
    const auto inputs = expand_inputs(flags.inputs, flags.null_separated);
    IndexOptions options;
    // A set being made (--shards, --shard) is the folder named: concurrent tasks creating it see each
    // other's files in it, which must never send one of them into a ".cbir" inside it.
    if ((flags.shards || flags.shard) && flags.store.empty())
        throw Error("--shards and --shard need --store naming the set's folder");
    options.store_dir = flags.shards || flags.shard ? std::filesystem::absolute(flags.store).lexically_normal()
                                                    : resolve_store(flags.store, /*for_writing=*/true);
    if (options.store_dir.filename().empty()) options.store_dir = options.store_dir.parent_path();
    if (flags.store.empty() && options.store_dir.parent_path() != std::filesystem::current_path())
        log_notice("adding to " + options.store_dir.string() + ", found above this folder (--store names another)");
    options.index_parameters = given_index_parameters(flags, app);
    if (!flags.model.empty()) options.model = flags.model;
    options.executable_dir = exe_dir;
    if (!flags.metric.empty()) options.metric = parse_metric(flags.metric);
    if (!flags.index_kind.empty()) options.index = parse_index_flags(flags.index_kind, flags.hnsw_m, flags.ef_construction,
                                                                      flags.nlist, flags.pq_m, flags.pq_bits);
    options.batch = flags.batch;
    options.threads = flags.threads;
    options.reader_threads = flags.readers;
    options.precision = parse_precision(flags.precision);
    options.fast_decode = flags.fast_decode;
    options.prune = flags.prune;
    stop_cleanly_on_signals();

    ProgressBar progress("indexing", stderr_is_terminal() && !flags.verbosity.quiet);
    IndexCallbacks callbacks;
    callbacks.on_failure = [&](const std::filesystem::path& path, const std::string& reason) {
        progress.clear();
        std::fprintf(stderr, "cbir: skipped %s: %s\n", path.c_str(), reason.c_str());
    };
    callbacks.on_progress = [&](size_t done, size_t total) { progress.update(done, total); };

    IndexSummary s;
    std::string where = options.store_dir.string();  // what the summary's count is of
    if (flags.shards || flags.shard || StoreSet::exists(options.store_dir)) {
        SetIndexOptions set_options;
        set_options.store = options;
        set_options.shards = flags.shards;
        const StoreSet set = open_or_create_set(inputs, set_options);
        set_options.fill = shards_to_fill(flags, set.shards());
        if (set_options.fill.empty() && job_placement_from_environment()) return kOk;  // more ranks than shards
        s = index_store_set(inputs, set_options, callbacks);
        if (!set_options.fill.empty() && static_cast<int>(set_options.fill.size()) < set.shards())
            where = fmt::format("{} {} of {}", set_options.fill.size() == 1 ? "shard" : "shards",
                                fmt::join(set_options.fill, ", "), where);
    } else {
        if (const auto job = job_placement_from_environment(); job && job->rank != 0) return kOk;
        s = run_index(inputs, options, callbacks);
    }
    progress.clear();
    if (!flags.verbosity.quiet) {
        const size_t embedded = s.added + s.updated;
        const auto job = job_placement_from_environment();
        const std::string who = job ? fmt::format("rank {} of {}: ", job->rank, job->size) : "";
        std::fprintf(stderr, "%s\n",
                     fmt::format("cbir: {}indexed {} new, {} changed, {} unchanged, {} moved, {} copied, {} pruned, {} "
                                 "skipped; {} in {}; {:.1f} s, {:.1f} images/s",
                                 who, s.added, s.updated, s.unchanged, s.moved, s.copied, s.pruned, s.failed,
                                 counted(s.store_count, "image"), where, s.seconds, s.seconds > 0 ? embedded / s.seconds : 0.0)
                         .c_str());
    }
    if (s.interrupted) {
        std::fprintf(stderr, "cbir: interrupted: every finished batch is committed; run the same command to resume\n");
        return kInterrupted;
    }
    return kOk;
}

}  // namespace

std::function<int()> add_index_command(CLI::App& app, const char* argv0) {
    auto flags = std::make_shared<IndexFlags>();
    app.add_option("inputs", flags->inputs, "Folders (walked recursively) and image files; - reads paths from stdin (none with -0: stdin)");
    add_null_option(app, flags->null_separated, "Paths on stdin are NUL-separated (find -print0)");
    app.add_flag("--prune", flags->prune, "Also remove entries under the given folders whose files are gone");
    app.add_option("--store", flags->store, "Store directory (default: nearest .cbir upward, else ./.cbir)")
        ->envname("CBIR_STORE");
    add_model_option(app, flags->model,
                     "TorchScript model, [N,3,224,224] -> [N,D] (default: the store's model, else models/resnet18-*.pt)");
    app.add_option("--index", flags->index_kind,
                   "ANN index of a new store: flat, hnsw, hnswsq8, ivf, ivfpq, or a factory string (HNSW32, "
                   "HNSW32,SQ8, IVF2048,Flat, IVF1024,PQ64) [HNSW32]")
        ->check(index_spec_validator())->envname("CBIR_INDEX");
    add_metric_option(app, flags->metric, "Distance of a new store: l2 (squared), cosine or ip [l2]");
    add_batch_option(app, flags->batch);
    add_threads_option(app, flags->threads);
    add_readers_option(app, flags->readers);
    add_hnsw_options(app, flags->hnsw_m, flags->ef_construction);
    add_ivf_flags(app, flags->nlist, flags->pq_m, flags->pq_bits);
    add_precision_flag(app, flags->precision);
    app.add_option("--shards", flags->shards,
                   "Make --store a set of S shards (fixed when the set is made): an image's shard is a hash of its path")
        ->check(CLI::Range(1, kMaxShards));
    app.add_option("--shard", flags->shard,
                   "Fill only shard I of the set (a Slurm array task: --shard $SLURM_ARRAY_TASK_ID); under mpirun or srun "
                   "each rank takes its own shards without it")
        ->check(CLI::Range(0, kMaxShards - 1));
    add_fast_decode_flag(app, flags->fast_decode, "Recorded in a new store; its later runs use it");
    add_verbosity_flags(app, flags->verbosity);
    const std::filesystem::path exe_dir = executable_dir(argv0);
    const CLI::App* command = &app;  // outlives the run: the main owns it
    return guarded_command([flags, exe_dir, command] { return run(*flags, exe_dir, *command); });
}

}  // namespace cbir::cli
