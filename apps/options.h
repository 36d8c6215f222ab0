#pragma once
// Every option that more than one command takes, defined once: its name, environment variable,
// range and help (llama.cpp's common/arg.cpp is the model). A command picks the ones it takes; where
// it must say more (what --model defaults to), it passes that as `help`.
#include <string>

#include <CLI/CLI.hpp>

namespace cbir::cli {

// The one range check of every numeric flag; a value outside it is refused in words:
// "--top-k: must be between 1 and 10,000 (got 0)", "--max-distance: must be >= 0 (got -1)".
// Give max = infinity for "at least min".
CLI::Validator in_range(double min, double max);
CLI::Validator at_least(double min);

CLI::Option* add_model_option(CLI::App& app, std::string& model, const std::string& help);
CLI::Option* add_threads_option(CLI::App& app, int& threads);
CLI::Option* add_readers_option(CLI::App& app, int& readers);
CLI::Option* add_batch_option(CLI::App& app, int& batch, const std::string& help = "Images per inference batch");
// -0: paths on stdin (and, where `help` says so, output) are NUL-separated.
CLI::Option* add_null_option(CLI::App& app, bool& null_separated, const std::string& help);
CLI::Option* add_metric_option(CLI::App& app, std::string& metric, const std::string& help);
CLI::Option* add_top_k_option(CLI::App& app, int& top_k);
CLI::Option* add_ef_option(CLI::App& app, int& ef, const std::string& help);
CLI::Option* add_nprobe_option(CLI::App& app, int& nprobe, const std::string& help);
// A float, or std::optional<float> where leaving it out means something.
template <typename T>
CLI::Option* add_min_similarity_option(CLI::App& app, T& min_similarity, const std::string& help) {
    return app.add_option("--min-similarity", min_similarity, help)->check(in_range(-1.0, 1.0))
        ->envname("CBIR_MIN_SIMILARITY");
}
// --fast-decode: JPEGs decoded at a reduced scale (image/preprocess.h). `help` says what it means for
// the command (a new store records it; an existing store's recipe decides).
CLI::Option* add_fast_decode_flag(CLI::App& app, bool& fast_decode, const std::string& help);
// --hnsw-m and --ef-construction: HNSW build parameters given apart from the --index string.
void add_hnsw_options(CLI::App& app, int& hnsw_m, int& ef_construction);

}  // namespace cbir::cli
