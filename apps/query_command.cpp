#include "query_command.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli_common.h"
#include "output/printer.h"
#include "search/searcher.h"

namespace cbir::cli {
namespace {

struct QueryFlags {
    std::vector<std::string> images;
    std::string store;
    std::string model;
    std::string format;
    int top_k = 10;
    int ef = 0;
    int threads = 0;
    bool exact = false;
    std::string precision = "fp32";
    Verbosity verbosity;
};

int run(const QueryFlags& flags) {
    apply_verbosity(flags.verbosity);
    ignore_sigpipe();
    QueryOptions options;
    options.store_dir = resolve_store(flags.store, /*for_writing=*/false);
    if (!flags.model.empty()) options.model = flags.model;
    options.top_k = flags.top_k;
    options.ef = flags.ef;
    options.exact = flags.exact;
    options.threads = flags.threads;
    options.precision = parse_precision(flags.precision);

    std::vector<std::filesystem::path> images(flags.images.begin(), flags.images.end());
    const QueryReport report = run_query(images, options);

    // Table on a terminal, tab-separated values in a pipe, unless --format says otherwise.
    const OutputFormat format = flags.format.empty()
                                    ? (stdout_is_terminal() ? OutputFormat::Table : OutputFormat::Tsv)
                                    : *parse_output_format(flags.format);
    if (format == OutputFormat::Table && !flags.verbosity.quiet)
        std::cerr << fmt::format("cbir: distance is {} ({} index; smaller is closer)\n",
                                 metric_description(report.metric), report.index_kind);
    auto printer = make_printer(format, std::cout, {"query", "rank", "distance", "path"});
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
    int code = any_error ? kError : any_hit ? kOk : kNoResults;
    if (!std::cout && errno == EPIPE) code = kOk;  // the reader went away (`| head`): not an error
    // Everything is written and committed; skip the teardown, where LibTorch's static destructors
    // alone take 0.13 s of a query's wall time.
    std::fflush(nullptr);
    std::_Exit(code);
}

}  // namespace

std::function<int()> add_query_command(CLI::App& app) {
    auto flags = std::make_shared<QueryFlags>();
    app.add_option("images", flags->images, "Query images")->required();
    app.add_option("-k,--top-k", flags->top_k, "Neighbours to print per query")->check(CLI::Range(1, 100000))
        ->capture_default_str()->envname("CBIR_TOP_K");
    app.add_option("--store", flags->store, "Store directory (default: nearest .cbir upward)")->envname("CBIR_STORE");
    app.add_option("--model", flags->model, "Model to embed queries with (must be the store's; default: the store's)")
        ->envname("CBIR_MODEL");
    app.add_option("--format", flags->format, "Output: table, tsv, csv, jsonl or paths (default: table on a terminal, "
                                              "tsv otherwise)")
        ->check(CLI::IsMember(output_format_names()))->envname("CBIR_FORMAT");
    app.add_option("--ef", flags->ef, "HNSW search breadth (0 = the store's default, at least k)")
        ->check(CLI::Range(0, 100000))->capture_default_str();
    app.add_flag("--exact", flags->exact, "Exact (flat) search instead of the ANN index");
    app.add_option("--threads", flags->threads, "Inference threads (0 = all cores)")->check(CLI::Range(0, 1024))
        ->capture_default_str()->envname("CBIR_THREADS");
    add_precision_flag(app, flags->precision);
    add_verbosity_flags(app, flags->verbosity);
    return [flags] {
        try {
            return run(*flags);
        } catch (const std::exception& e) {
            print_error(e.what());
            return static_cast<int>(kError);
        }
    };
}

}  // namespace cbir::cli
