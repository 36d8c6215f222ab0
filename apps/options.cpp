#include "options.h"

#include <fmt/format.h>

#include "image/preprocess.h"
#include "index/index_spec.h"
#include "search/search_limits.h"

namespace cbir::cli {
namespace {

CLI::Range range(const Bounds& bounds) { return CLI::Range(bounds.min, bounds.max); }

}  // namespace

CLI::Option* add_model_option(CLI::App& app, std::string& model, const std::string& help) {
    return app.add_option("--model", model, help)->envname("CBIR_MODEL");
}

CLI::Option* add_threads_option(CLI::App& app, int& threads) {
    return app.add_option("--threads", threads, "Inference threads (0 = all cores)")
        ->check(range(kThreadBounds))->capture_default_str()->envname("CBIR_THREADS");
}

CLI::Option* add_readers_option(CLI::App& app, int& readers) {
    return app.add_option("--readers", readers, "Image decoding threads (0 = all cores)")
        ->check(range(kThreadBounds))->capture_default_str()->envname("CBIR_READERS");
}

CLI::Option* add_batch_option(CLI::App& app, int& batch, const std::string& help) {
    return app.add_option("--batch", batch, help)->check(range(kBatchBounds))->capture_default_str()->envname("CBIR_BATCH");
}

CLI::Option* add_null_option(CLI::App& app, bool& null_separated, const std::string& help) {
    return app.add_flag("-0,--null", null_separated, help);
}

CLI::Option* add_metric_option(CLI::App& app, std::string& metric, const std::string& help) {
    return app.add_option("--metric", metric, help)->check(CLI::IsMember({"l2", "cosine", "ip"}))->envname("CBIR_METRIC");
}

CLI::Option* add_top_k_option(CLI::App& app, int& top_k) {
    return app.add_option("-k,--top-k", top_k, "Neighbours to print per query")->check(range(kTopKBounds))
        ->capture_default_str()->envname("CBIR_TOP_K");
}

CLI::Option* add_ef_option(CLI::App& app, int& ef, const std::string& help) {
    return app.add_option("--ef", ef, help)->check(range(kEfBounds))->capture_default_str()->envname("CBIR_EF");
}

CLI::Option* add_nprobe_option(CLI::App& app, int& nprobe, const std::string& help) {
    return app.add_option("--nprobe", nprobe, help)->check(range(kNprobeBounds))->capture_default_str()
        ->envname("CBIR_NPROBE");
}

CLI::Option* add_fast_decode_flag(CLI::App& app, bool& fast_decode, const std::string& help) {
    return app.add_flag("--fast-decode", fast_decode,
                        fmt::format("Decode JPEGs at 1/2, 1/4 or 1/8 scale, shorter side kept >= {} px: faster, "
                                    "features a little off the exact path's{}{}",
                                    kFastDecodeMinSide, help.empty() ? "" : ". ", help))
        ->envname("CBIR_FAST_DECODE");
}

void add_hnsw_options(CLI::App& app, int& hnsw_m, int& ef_construction) {
    app.add_option("--hnsw-m", hnsw_m, "HNSW graph degree M")->check(CLI::Range(2, 256))->capture_default_str()
        ->envname("CBIR_HNSW_M");
    app.add_option("--ef-construction", ef_construction, "HNSW build breadth")->check(CLI::Range(4, 4096))
        ->capture_default_str()->envname("CBIR_EF_CONSTRUCTION");
}

}  // namespace cbir::cli
