#include "query_command.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli_common.h"
#include "options.h"
#include "output/montage.h"
#include "output/printer.h"
#include "store/store.h"
#include "image/image_file.h"
#include "util/error.h"
#include "util/log.h"
#include "search/searcher.h"
#include "cluster/communicator.h"
#include "shard/set_search.h"
#include "serve/served_query.h"

namespace cbir::cli {
namespace {

struct QueryFlags {
    std::vector<std::string> images;
    bool null_separated = false;
    std::optional<float> max_distance;
    std::optional<float> min_similarity;
    std::string montage;
    int batch = 8;
    std::string store;
    std::string model;
    std::string format;
    int top_k = 10;
    int ef = 0;
    int nprobe = 0;
    int threads = 0;
    bool exact = false;
    std::string precision;
    bool fast_decode = false;
    Verbosity verbosity;
};

// The path as the user would type it (relative here when inside this folder), its end kept when long:
// the folder often tells two hits apart more than the file name does.
std::string short_name(const std::string& path) {
    const std::string shown = display_path(std::filesystem::absolute(path).lexically_normal().string());
    return shown.size() > 24 ? "..." + shown.substr(shown.size() - 21) : shown;
}

void write_query_montage(const QueryReport& report, const std::string& output) {
    std::vector<std::vector<MontageTile>> groups;
    for (const auto& result : report.results) {
        if (!result.error.empty()) continue;
        std::vector<MontageTile> tiles{{result.query, "query " + short_name(result.query.string())}};
        for (const auto& hit : result.hits)
            tiles.push_back({hit.path, fmt::format("#{} {:.4g} {}", hit.rank, hit.distance, short_name(hit.path))});
        groups.push_back(std::move(tiles));
    }
    write_montage(output, groups, MontageLayout{});
}

int run(const QueryFlags& flags) {
    apply_verbosity(flags.verbosity);
    // Every query path is checked before the store and the model are opened: a typo costs nothing.
    // In an MPI job only rank 0 reads the queries (mpirun gives stdin to rank 0 alone); the other
    // ranks receive their vectors.
    const auto placement = job_placement_from_environment();
    std::vector<std::filesystem::path> images;
    if (!placement || placement->rank == 0) {
        images = expand_inputs(flags.images, flags.null_separated);
        if (images.empty()) throw Error("no query images (stdin was empty)");
        require_image_files(images, "query");
        // When no query is even readable up to its header (empty, unknown format, over the caps),
        // the model is not started for nothing; otherwise each refused one is reported in its turn.
        // The first readable one ends the look (a long stdin list is not read twice).
        std::vector<std::string> refusals;
        for (const auto& image : images) {
            std::string why = image_file_refusal(image);
            if (why.empty()) break;
            refusals.push_back(image.string() + ": " + why);
        }
        if (refusals.size() == images.size() && !(placement && placement->size > 1)) {
            for (const auto& refusal : refusals) print_error(refusal);
            return finish_output(kError);
        }
    }
    if (!flags.montage.empty() && !montage_encoding(flags.montage))
        throw Error(flags.montage + ": --montage writes .png or .jpg files");
    const OutputFormat format = resolve_format(flags.format, "query");
    QueryOptions options;
    options.store_dir = resolve_store(flags.store, /*for_writing=*/false);
    if (!flags.model.empty()) options.model = flags.model;
    options.top_k = flags.top_k;
    options.ef = flags.ef;
    options.nprobe = flags.nprobe;
    options.exact = flags.exact;
    options.threads = flags.threads;
    options.batch = flags.batch;
    options.max_distance = flags.max_distance;
    options.precision = parse_precision(flags.precision);
    options.fast_decode = flags.fast_decode;

    const bool is_set = StoreSet::exists(options.store_dir);
    if (placement && !is_set && placement->rank != 0) std::_Exit(kOk);  // one store: rank 0 answers alone
    if (flags.min_similarity) {
        // Similarity is defined for the angular metrics, where distance = 1 - similarity.
        const Metric metric = is_set ? StoreSet::open(options.store_dir).manifest().metric
                                     : Store::open(options.store_dir, CatalogueAccess::ReadOnly)->settings().metric;
        if (metric == Metric::L2)
            throw Error("--min-similarity needs a cosine or ip store; this one is l2 (use --max-distance)");
        options.max_distance = 1.0f - *flags.min_similarity;
    }
    std::unique_ptr<Communicator> job;
    if (is_set && placement) {
        if (!placement->mpi)
            throw Error(fmt::format("{}: a set is searched by {} ranks only in an MPI job (mpirun, or srun --mpi=pmix)",
                                    options.store_dir.string(), placement->size));
        job = join_mpi_job();
    }
    QueryReport report;
    try {
        if (is_set) {
            if (!job) log_debug("searching here, not through a server: a set is searched by this process, or by "
                                "the ranks of an MPI job (one-shot queries through a server are for single stores)");
            report = run_set_query(images, options, job.get());
        } else if (std::optional<QueryReport> served = query_through_server(images, options)) {
            // A `cbir serve` holding the store answers in a fraction of LibTorch's start-up; else, here.
            report = std::move(*served);
        } else {
            report = run_query(images, options);
        }
    } catch (...) {
        // Every rank has seen the error by now: end MPI in step, then report it.
        job.reset();
        throw;
    }
    if (job && job->rank() != 0) {
        job.reset();
        std::fflush(nullptr);
        std::_Exit(kOk);
    }
    job.reset();
    if (!flags.montage.empty()) write_query_montage(report, flags.montage);

    if (format == OutputFormat::Table && !flags.verbosity.quiet)
        std::cerr << fmt::format("cbir: distance is {} ({} index; smaller is closer)\n",
                                 metric_description(report.metric), report.index_kind);
    auto printer = make_printer(format, std::cout, {"query", "rank", "distance", "path"}, flags.null_separated);
    bool any_hit = false;
    bool any_error = false;
    for (const auto& result : report.results) {
        if (!result.error.empty()) {
            print_error(fmt::format("{}: {}", result.query.string(), result.error));
            any_error = true;
            continue;
        }
        for (const auto& hit : result.hits) {
            any_hit = true;
            printer->record({result.query.string(), static_cast<int64_t>(hit.rank), static_cast<double>(hit.distance),
                             display_path(hit.path)});
        }
    }
    printer->finish();
    const int code = finish_output(any_error ? kError : any_hit ? kOk : kNoResults);
    // Everything is written and nothing was changed; skip the teardown, where LibTorch's static
    // destructors alone take 0.13 s of a query's wall time.
    std::fflush(nullptr);
    std::_Exit(code);
}

}  // namespace

std::function<int()> add_query_command(CLI::App& app) {
    auto flags = std::make_shared<QueryFlags>();
    app.add_option("images", flags->images, "Query images; - reads paths from stdin, one per line (none with -0: stdin)");
    add_null_option(app, flags->null_separated, "Paths on stdin, and --format paths output, are NUL-separated");
    app.add_option("--max-distance", flags->max_distance, "Print only hits at this distance or closer (exit 1 if none)")
        ->check(at_least(0))->envname("CBIR_MAX_DISTANCE");
    add_min_similarity_option(app, flags->min_similarity,
                              "Cosine/ip stores: print only hits with similarity (1 - distance) at least this")
        ->excludes("--max-distance");
    app.add_option("--montage", flags->montage, "Also write a contact sheet (.png or .jpg): a row per query, its hits captioned");
    add_batch_option(app, flags->batch, "Query images per inference batch");
    add_top_k_option(app, flags->top_k);
    add_store_flag(app, flags->store);
    add_model_option(app, flags->model, "Model to embed queries with (must be the store's; default: the store's)");
    add_format_flag(app, flags->format, "query");
    add_ef_option(app, flags->ef, "HNSW search breadth (0 = the store's default, at least k)");
    add_nprobe_option(app, flags->nprobe, "IVF lists visited per query (0 = the store's default, 16)");
    app.add_flag("--exact", flags->exact, "Exact (flat) search instead of the ANN index")->envname("CBIR_EXACT");
    add_threads_option(app, flags->threads);
    add_precision_flag(app, flags->precision);
    add_fast_decode_flag(app, flags->fast_decode, "Only for a store built with it, which implies it");
    add_verbosity_flags(app, flags->verbosity);
    return guarded_command([flags] { return run(*flags); });
}

}  // namespace cbir::cli
