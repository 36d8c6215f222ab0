#include "bench_command.h"

#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "bench/ann_bench.h"
#include "bench/benchmarks.h"
#include "cli_common.h"
#include "pipeline/model_resolution.h"
#include "pipeline/walk.h"
#include "store/store.h"
#include "util/error.h"

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
    std::vector<std::string> ann_specs{"HNSW32", "IVFauto,Flat", "IVFauto,PQ64"};
    size_t queries = 200;
    std::string work_dir = ".";
    std::string vectors_from;
};

// Every vector of a store, for benchmarking its real data.
std::vector<float> store_vectors(const std::filesystem::path& dir, int& dimension) {
    auto store = Store::open(dir);
    dimension = store->settings().dimension;
    std::vector<int64_t> ids;
    std::vector<float> out;
    store->catalogue().all_vectors(dimension, ids, out);
    return out;
}

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
    auto* ann = app.add_subcommand("ann", "Index kinds on the same vectors: build, size, load, memory, queries/s, recall@10");
    ann->add_option("--count", flags->count, "Synthetic vectors (ignored with --vectors-from)")->capture_default_str();
    ann->add_option("--dimension", flags->dimension, "Dimension of synthetic vectors")->capture_default_str();
    ann->add_option("--queries", flags->queries, "Queries (from the same distribution, not in the base set)")
        ->capture_default_str();
    ann->add_option("--index", flags->ann_specs, "Index specs to measure (repeat the flag)")
        ->check(index_spec_validator())->capture_default_str();
    ann->add_option("--metric", flags->metric, "l2, cosine or ip")->check(CLI::IsMember({"l2", "cosine", "ip"}))
        ->capture_default_str();
    ann->add_option("--vectors-from", flags->vectors_from, "Use a store's real vectors: the last --queries of them "
                                                           "query the others");
    ann->add_option("--work-dir", flags->work_dir, "Where index files are written while measured")->capture_default_str();
    const std::filesystem::path exe_dir = executable_dir(argv0);
    return [flags, exe_dir, inference, decode, synth, ann] {
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
            } else if (ann->parsed()) {
                AnnBenchOptions options;
                options.count = flags->count;
                options.dimension = flags->dimension;
                options.queries = flags->queries;
                options.metric = *parse_metric(flags->metric);
                options.work_dir = flags->work_dir;
                for (const auto& text : flags->ann_specs) options.specs.push_back(*parse_index_spec(text, IndexSpec{}, nullptr));
                if (!flags->vectors_from.empty()) {
                    auto all = store_vectors(flags->vectors_from, options.dimension);
                    const size_t n = all.size() / options.dimension;
                    if (n <= options.queries) throw Error("the store has too few vectors for that many queries");
                    options.query_vectors.assign(all.end() - static_cast<long>(options.queries * options.dimension), all.end());
                    all.resize((n - options.queries) * options.dimension);
                    options.base = std::move(all);
                }
                bench_ann(options, [](const AnnBenchRow& r) {
                    nlohmann::ordered_json row{{"bench", "ann"}, {"index", r.index}, {"knob", r.knob}, {"vectors", r.count},
                                               {"build_seconds", r.build_seconds}, {"file_mib", r.file_bytes / 1048576.0},
                                               {"load_seconds", r.load_seconds}, {"resident_mib", r.resident_mib},
                                               {"queries_per_second", r.queries_per_second},
                                               {"recall_at_10", r.recall_at_10}};
                    std::cout << row.dump() << std::endl;
                });
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
