#include "options.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include <fmt/format.h>

#include "image/preprocess.h"
#include "index/index_spec.h"
#include "search/search_limits.h"

namespace cbir::cli {
namespace {

// 10000 -> "10,000"; 0.5 -> "0.5".
std::string number_in_words(double value) {
    if (value != std::floor(value) || std::fabs(value) >= 1e15) return fmt::format("{}", value);
    std::string digits = fmt::format("{}", static_cast<long long>(std::fabs(value)));
    for (int at = static_cast<int>(digits.size()) - 3; at > 0; at -= 3) digits.insert(static_cast<size_t>(at), ",");
    return (value < 0 ? "-" : "") + digits;
}

CLI::Validator range(const Bounds& bounds) { return in_range(bounds.min, bounds.max); }

}  // namespace

CLI::Validator in_range(double min, double max) {
    const std::string wanted = std::isinf(max) ? "must be >= " + number_in_words(min)
                                               : "must be between " + number_in_words(min) + " and " + number_in_words(max);
    return CLI::Validator(
        [min, max, wanted](std::string& text) -> std::string {
            char* end = nullptr;
            const double value = std::strtod(text.c_str(), &end);
            if (text.empty() || end != text.c_str() + text.size() || std::isnan(value))
                return "must be a number (got \"" + text + "\")";
            if (value < min || value > max) return wanted + " (got " + text + ")";
            return {};
        },
        std::isinf(max) ? "NUMBER >= " + number_in_words(min) : "NUMBER in " + number_in_words(min) + ".." + number_in_words(max));
}

CLI::Validator at_least(double min) { return in_range(min, std::numeric_limits<double>::infinity()); }

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
    app.add_option("--hnsw-m", hnsw_m, "HNSW graph degree M")->check(in_range(2, 256))->capture_default_str()
        ->envname("CBIR_HNSW_M");
    app.add_option("--ef-construction", ef_construction, "HNSW build breadth")->check(in_range(4, 4096))
        ->capture_default_str()->envname("CBIR_EF_CONSTRUCTION");
}

}  // namespace cbir::cli
