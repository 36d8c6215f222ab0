#include "index_command.h"

#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli_common.h"
#include "options.h"
#include "progress.h"
#include "pipeline/indexer.h"
#include "util/error.h"

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
    std::string precision = "fp32";
    Verbosity verbosity;
};

int run(const IndexFlags& flags, const std::filesystem::path& exe_dir) {
    apply_verbosity(flags.verbosity);
    IndexOptions options;
    options.store_dir = resolve_store(flags.store, /*for_writing=*/true);
    if (!flags.model.empty()) options.model = flags.model;
    options.executable_dir = exe_dir;
    if (!flags.metric.empty()) options.metric = parse_metric(flags.metric);
    if (!flags.index_kind.empty()) options.index = parse_index_flags(flags.index_kind, flags.hnsw_m, flags.ef_construction,
                                                                      flags.nlist, flags.pq_m, flags.pq_bits);
    options.batch = flags.batch;
    options.threads = flags.threads;
    options.reader_threads = flags.readers;
    options.precision = parse_precision(flags.precision);
    options.prune = flags.prune;
    stop_cleanly_on_signals();

    ProgressBar progress("indexing", stderr_is_terminal() && !flags.verbosity.quiet);
    IndexCallbacks callbacks;
    callbacks.on_failure = [&](const std::filesystem::path& path, const std::string& reason) {
        progress.clear();
        std::fprintf(stderr, "cbir: skipped %s: %s\n", path.c_str(), reason.c_str());
    };
    callbacks.on_progress = [&](size_t done, size_t total) { progress.update(done, total); };

    const auto inputs = expand_inputs(flags.inputs, flags.null_separated);
    const IndexSummary s = run_index(inputs, options, callbacks);
    progress.clear();
    if (!flags.verbosity.quiet) {
        const size_t embedded = s.added + s.updated;
        std::fprintf(stderr, "%s\n",
                     fmt::format("cbir: indexed {} new, {} changed, {} unchanged, {} moved, {} copied, {} pruned, {} "
                                 "skipped; {} images in {}; {:.1f} s, {:.1f} images/s",
                                 s.added, s.updated, s.unchanged, s.moved, s.copied, s.pruned, s.failed, s.store_count,
                                 options.store_dir.string(), s.seconds, s.seconds > 0 ? embedded / s.seconds : 0.0)
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
    app.add_option("inputs", flags->inputs, "Folders (walked recursively) and image files; - reads paths from stdin")
        ->required();
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
    add_verbosity_flags(app, flags->verbosity);
    const std::filesystem::path exe_dir = executable_dir(argv0);
    return guarded_command([flags, exe_dir] { return run(*flags, exe_dir); });
}

}  // namespace cbir::cli
