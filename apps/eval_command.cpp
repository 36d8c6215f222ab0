// `cbir eval`: retrieval quality of a store on a labelled set.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli_common.h"
#include "options.h"
#include "more_commands.h"
#include "search/evaluate.h"

namespace cbir::cli {
namespace {

struct EvalFlags {
    std::string store;
    std::string labels;
    std::string root;
    int recall_k = 10;
    int ef = 0;
    int nprobe = 0;
    bool per_class = false;
    std::string format;
    Verbosity verbosity;
};

int run(const EvalFlags& flags) {
    apply_verbosity(flags.verbosity);
    const OutputFormat format = resolve_format(flags.format, "eval");
    auto store = Store::open(require_single_store(resolve_store(flags.store, /*for_writing=*/false), "eval"),
                             CatalogueAccess::ReadOnly);
    EvalOptions options;
    if (!flags.labels.empty()) options.labels = flags.labels;
    if (!flags.root.empty()) options.root = flags.root;
    options.recall_k = flags.recall_k;
    options.ef = flags.ef;
    options.nprobe = flags.nprobe;
    const EvalReport r = evaluate_store(*store, options);
    if (r.unlabelled && !flags.verbosity.quiet)
        std::fprintf(stderr, "cbir: %zu of the store's %zu images have no label and were left out\n", r.unlabelled,
                     r.store_images);
    // Row "exact": the exact ranking (mAP over all of it). Row "<index>": the index's own top-10, as
    // `cbir query` returns it, and its recall@k against exact search.
    auto printer = make_printer(format, std::cout,
                                {"search", "images", "metric", "p_at_1", "p_at_5", "p_at_10", "map",
                                 "recall_at_" + std::to_string(r.recall_k)});
    printer->record({std::string("exact"), static_cast<int64_t>(r.queries), r.metric, r.precision_at_1,
                     r.precision_at_5, r.precision_at_10, r.mean_average_precision, 1.0});
    if (r.index_kind != index_kind_name(IndexKind::Flat))
        printer->record({r.index_kind, static_cast<int64_t>(r.queries), r.metric, r.index_precision_at_1,
                         r.index_precision_at_5, r.index_precision_at_10, std::string(""), r.ann_recall});
    if (flags.per_class)
        for (const auto& c : r.classes)
            printer->record({"exact, class " + c.name, static_cast<int64_t>(c.images), r.metric, std::string(""),
                             std::string(""), std::string(""), c.average_precision, std::string("")});
    printer->finish();
    return kOk;
}

}  // namespace

std::function<int()> add_eval_command(CLI::App& app) {
    auto flags = std::make_shared<EvalFlags>();
    add_store_flag(app, flags->store);
    app.add_option("--labels", flags->labels, "TSV of file<TAB>class[<TAB>name] (default: each image's folder name is its class)");
    app.add_option("--root", flags->root, "Folder the label file's paths are relative to (default: the TSV's folder)");
    app.add_option("--recall-k", flags->recall_k, "k of the ANN recall@k against exact search")
        ->check(in_range(1, 1000))->capture_default_str();
    add_ef_option(app, flags->ef, "HNSW search breadth for the recall (0 = the store's default)");
    add_nprobe_option(app, flags->nprobe, "IVF lists visited for the recall (0 = the store's default)");
    app.add_flag("--per-class", flags->per_class, "Also print each class's mean average precision");
    add_format_flag(app, flags->format, "eval");
    add_verbosity_flags(app, flags->verbosity);
    return guarded_command([flags] { return run(*flags); });
}

}  // namespace cbir::cli
