#include "bench_command.h"

#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "bench/benchmarks.h"
#include "cli_common.h"
#include "pipeline/model_resolution.h"
#include "pipeline/walk.h"

namespace cbir::cli {
namespace {

struct BenchFlags {
    std::string model;
    std::vector<int> batches{1, 4, 8, 16};
    int threads = 0;
    bool no_optimize = false;
    std::string precision = "fp32";
    double seconds = 3.0;
    std::vector<std::string> folders;
    int readers = 0;
    std::string store;
    size_t count = 100000;
    int dimension = 512;
    std::string index_kind = "hnsw";
    std::string metric = "l2";
};

std::filesystem::path model_path(const BenchFlags& flags, const std::filesystem::path& exe_dir) {
    return model_for_new_store(flags.model.empty() ? std::nullopt : std::optional<std::filesystem::path>(flags.model),
                               exe_dir)
        .path;
}

}  // namespace

std::function<int()> add_bench_command(CLI::App& app, const char* argv0) {
    auto flags = std::make_shared<BenchFlags>();
    app.require_subcommand(1);
    auto* inference = app.add_subcommand("inference", "Inference alone on random inputs: images/s per batch size");
    inference->add_option("--model", flags->model, "TorchScript model (default: models/resnet18-*.pt)");
    inference->add_option("--batch", flags->batches, "Batch sizes to measure")->delimiter(',')->capture_default_str();
    inference->add_option("--threads", flags->threads, "Intra-op threads (0 = all cores)")->capture_default_str();
    inference->add_flag("--no-optimize", flags->no_optimize, "Skip torch::jit::optimize_for_inference");
    add_precision_flag(*inference, flags->precision);
    inference->add_option("--seconds", flags->seconds, "Timed seconds per batch size")->capture_default_str();
    auto* decode = app.add_subcommand("decode", "Read + decode + preprocess alone: images/s");
    decode->add_option("folders", flags->folders, "Folders or images")->required();
    decode->add_option("--readers", flags->readers, "Threads (0 = all cores)")->capture_default_str();
    auto* synth = app.add_subcommand("synth-store", "Create a store of synthetic clustered vectors, index built");
    synth->add_option("--store", flags->store, "New store directory")->required();
    synth->add_option("--count", flags->count, "Vectors")->capture_default_str();
    synth->add_option("--dimension", flags->dimension, "Dimension (must match the model for queries)")->capture_default_str();
    synth->add_option("--index", flags->index_kind, "Index spec (flat, hnsw, ivf, ivfpq, HNSW32, IVF2048,Flat, …)")
        ->check(index_spec_validator())->capture_default_str();
    synth->add_option("--metric", flags->metric, "l2, cosine or ip")->check(CLI::IsMember({"l2", "cosine", "ip"}))
        ->capture_default_str();
    synth->add_option("--model", flags->model, "Model recorded as the store's (default: models/resnet18-*.pt)");
    const std::filesystem::path exe_dir = executable_dir(argv0);
    return [flags, exe_dir, inference, decode, synth] {
        try {
            if (inference->parsed()) {
                const auto model = model_path(*flags, exe_dir);
                for (int batch : flags->batches) {
                    const InferenceBench r = bench_inference(model, batch, flags->threads, !flags->no_optimize,
                                                               parse_precision(flags->precision), flags->seconds);
                    nlohmann::ordered_json row{{"bench", "inference"}, {"batch", r.batch}, {"threads", r.threads},
                                               {"optimized", r.optimized}, {"precision", flags->precision}, {"images_per_second", r.images_per_second},
                                               {"batches_timed", r.batch_seconds.size()},
                                               {"load_seconds", r.load.load_seconds},
                                               {"optimize_seconds", r.load.optimize_seconds},
                                               {"warm_up_seconds", r.load.warm_up_seconds}};
                    std::cout << row.dump() << std::endl;
                }
            } else if (decode->parsed()) {
                std::vector<std::filesystem::path> inputs(flags->folders.begin(), flags->folders.end());
                const auto files = collect_image_files(inputs, [](const WalkProblem&) {});
                const DecodeBench r = bench_decode(files, flags->readers);
                nlohmann::ordered_json row{{"bench", "decode"}, {"images", r.images}, {"failed", r.failed},
                                           {"readers", r.readers}, {"seconds", r.seconds},
                                           {"images_per_second", r.images_per_second}};
                std::cout << row.dump() << std::endl;
            } else if (synth->parsed()) {
                make_synthetic_store(std::filesystem::absolute(flags->store), model_path(*flags, exe_dir), flags->count,
                                     flags->dimension, *parse_metric(flags->metric),
                                     *parse_index_spec(flags->index_kind, IndexSpec{}, nullptr));
            }
            return static_cast<int>(kOk);
        } catch (const std::exception& e) {
            print_error(e.what());
            return static_cast<int>(kError);
        }
    };
}

}  // namespace cbir::cli
