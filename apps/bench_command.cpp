#include "bench_command.h"

#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "bench/ann_bench.h"
#include "bench/benchmarks.h"
#include "cluster/communicator.h"
#include "shard/store_set.h"
#include "cli_common.h"
#include "options.h"
#include "output/npy_writer.h"
#include "pipeline/embed_files.h"
#include "pipeline/model_resolution.h"
#include "pipeline/walk.h"
#include "search/search_limits.h"
#include "store/store.h"
#include "util/error.h"

namespace cbir::cli {
namespace {

struct BenchFlags {
    std::string model;
    std::vector<int> batches{1, 4, 8, 16};
    int threads = 0;
    bool no_optimize = false;
    std::string precision;
    double seconds = 3.0;
    std::vector<std::string> folders;
    int readers = 0;
    std::string store;
    size_t count = 100000;
    int dimension = 512;
    std::string index_kind = "hnsw";
    std::string metric = "l2";
    std::vector<std::string> ann_specs{"HNSW32", "HNSW32,SQ8", "IVFauto,Flat", "IVFauto,PQ64"};
    size_t queries = 200;
    std::string work_dir = ".";
    std::string vectors_from;
    int shards = 0;
    size_t iterations = 2000;
    int fast_min_side = 0;
    int batch = 8;
    std::string output;
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

using Runner = std::function<void()>;

Runner add_inference_bench(CLI::App& app, BenchFlags& flags, const std::filesystem::path& exe_dir) {
    auto* sub = app.add_subcommand("inference", "Inference alone on random inputs: images/s per batch size");
    add_model_option(*sub, flags.model, "TorchScript model (default: models/resnet18-*.pt)");
    sub->add_option("--batch", flags.batches, "Batch sizes to measure")->delimiter(',')->capture_default_str()
        ->check(in_range(kBatchBounds.min, kBatchBounds.max));
    add_threads_option(*sub, flags.threads);
    sub->add_flag("--no-optimize", flags.no_optimize, "Skip torch::jit::optimize_for_inference");
    add_precision_flag(*sub, flags.precision);
    sub->add_option("--seconds", flags.seconds, "Timed seconds per batch size")->check(in_range(0.1, 3600.0))
        ->capture_default_str();
    return [sub, &flags, exe_dir] {
        if (!sub->parsed()) return;
        const auto model = model_path(flags, exe_dir);
        for (int batch : flags.batches) {
            const InferenceBench r = bench_inference(model, batch, flags.threads, !flags.no_optimize,
                                                     parse_precision(flags.precision), flags.seconds);
            nlohmann::ordered_json row{{"bench", "inference"}, {"batch", r.batch}, {"threads", r.threads},
                                       {"optimized", r.optimized}, {"precision", precision_name(r.precision)},
                                       {"images_per_second", r.images_per_second}, {"batches_timed", r.batch_seconds.size()},
                                       {"load_seconds", r.load.load_seconds}, {"optimize_seconds", r.load.optimize_seconds},
                                       {"warm_up_seconds", r.load.warm_up_seconds}};
            std::cout << row.dump() << std::endl;
        }
    };
}

Runner add_decode_bench(CLI::App& app, BenchFlags& flags) {
    auto* sub = app.add_subcommand("decode", "Read + decode + preprocess alone: images/s");
    sub->add_option("folders", flags.folders, "Folders or images")->required();
    add_readers_option(*sub, flags.readers);
    return [sub, &flags] {
        if (!sub->parsed()) return;
        std::vector<std::filesystem::path> inputs(flags.folders.begin(), flags.folders.end());
        const DecodeBench r = bench_decode(collect_image_files(inputs, [](const WalkProblem&) {}), flags.readers);
        nlohmann::ordered_json row{{"bench", "decode"}, {"images", r.images}, {"failed", r.failed}, {"readers", r.readers},
                                   {"seconds", r.seconds}, {"images_per_second", r.images_per_second}};
        std::cout << row.dump() << std::endl;
    };
}

Runner add_stages_bench(CLI::App& app, BenchFlags& flags) {
    auto* sub = app.add_subcommand("stages", "Where preparing an image goes, stage by stage, one thread: seconds per stage");
    sub->add_option("folders", flags.folders, "Folders or images")->required();
    sub->add_option("--fast-min-side", flags.fast_min_side, "Also time --fast-decode's decode with this shorter-side floor")
        ->check(CLI::Range(0, 65535))->capture_default_str();
    return [sub, &flags] {
        if (!sub->parsed()) return;
        std::vector<std::filesystem::path> inputs(flags.folders.begin(), flags.folders.end());
        const StageBench r = bench_stages(collect_image_files(inputs, [](const WalkProblem&) {}), flags.fast_min_side);
        nlohmann::ordered_json row{{"bench", "stages"}, {"images", r.images}, {"failed", r.failed},
                                   {"jpeg_pixels_differ", r.jpeg_pixels_differ}, {"megapixels", r.megapixels},
                                   {"read", r.read}, {"sha256", r.sha256}, {"decode_opencv", r.decode_opencv},
                                   {"decode_turbo", r.decode_turbo}, {"exif", r.exif}, {"resize", r.resize},
                                   {"normalize", r.normalize}};
        if (r.fast_min_side > 0) {
            row["fast_min_side"] = r.fast_min_side;
            row["decode_fast"] = r.decode_fast;
            row["resize_fast"] = r.resize_fast;
        }
        std::cout << row.dump() << std::endl;
    };
}

Runner add_features_bench(CLI::App& app, BenchFlags& flags, const std::filesystem::path& exe_dir) {
    auto* sub = app.add_subcommand("features", "Like cbir embed --format npy, with any --fast-decode floor: for "
                                               "measuring the floor (scripts/measure_fast_decode.py)");
    sub->add_option("folders", flags.folders, "Folders or images")->required();
    add_model_option(*sub, flags.model, "TorchScript model (default: models/resnet18-*.pt)");
    sub->add_option("--fast-min-side", flags.fast_min_side, "Shorter-side floor of the DCT-scaled JPEG decode; 0: exact")
        ->check(CLI::Range(0, 65535))->capture_default_str();
    sub->add_option("-o,--output", flags.output, "The .npy file (rows in the order of the paths printed)")->required();
    return [sub, &flags, exe_dir] {
        if (!sub->parsed()) return;
        EmbedFilesOptions options;
        options.model = model_path(flags, exe_dir);
        options.preprocessing.fast_decode_min_side = flags.fast_min_side;
        std::vector<std::filesystem::path> inputs(flags.folders.begin(), flags.folders.end());
        const auto embedded = embed_files(inputs, options, [](const std::filesystem::path& path, const std::string& why) {
            throw Error(path.string() + ": " + why);
        });
        const size_t dimension = embedded.empty() ? 0 : embedded.front().vector.size();
        std::vector<float> matrix;
        for (const auto& e : embedded) matrix.insert(matrix.end(), e.vector.begin(), e.vector.end());
        write_npy_float32(flags.output, matrix, embedded.size(), dimension);
        for (const auto& e : embedded) std::cout << e.path.string() << '\n';
    };
}

Runner add_pipeline_bench(CLI::App& app, BenchFlags& flags, const std::filesystem::path& exe_dir) {
    auto* sub = app.add_subcommand("pipeline", "Decode threads feeding inference, no store: images/s, inference "
                                               "and waiting seconds");
    sub->add_option("folders", flags.folders, "Folders or images")->required();
    add_model_option(*sub, flags.model, "TorchScript model (default: models/resnet18-*.pt)");
    add_readers_option(*sub, flags.readers);
    add_threads_option(*sub, flags.threads);
    add_batch_option(*sub, flags.batch);
    return [sub, &flags, exe_dir] {
        if (!sub->parsed()) return;
        std::vector<std::filesystem::path> inputs(flags.folders.begin(), flags.folders.end());
        const PipelineBench r = bench_pipeline(collect_image_files(inputs, [](const WalkProblem&) {}),
                                               model_path(flags, exe_dir), flags.readers, flags.threads, flags.batch);
        nlohmann::ordered_json row{{"bench", "pipeline"}, {"images", r.images}, {"readers", r.readers},
                                   {"threads", r.threads}, {"batch", r.batch}, {"seconds", r.seconds},
                                   {"images_per_second", r.images_per_second}, {"inference_seconds", r.inference_seconds},
                                   {"waiting_seconds", r.waiting_seconds}};
        std::cout << row.dump() << std::endl;
    };
}

Runner add_synth_store_bench(CLI::App& app, BenchFlags& flags, const std::filesystem::path& exe_dir) {
    auto* sub = app.add_subcommand("synth-store", "Create a store of synthetic clustered vectors, index built");
    sub->add_option("--store", flags.store, "New store directory")->required();
    sub->add_option("--count", flags.count, "Vectors")->capture_default_str();
    sub->add_option("--dimension", flags.dimension, "Dimension (must match the model for queries)")
        ->check(in_range(1, 65536))->capture_default_str();
    sub->add_option("--index", flags.index_kind, "Index spec (flat, hnsw, hnswsq8, ivf, ivfpq, HNSW32, HNSW32,SQ8, IVF2048,Flat, …)")
        ->check(index_spec_validator())->capture_default_str();
    add_metric_option(*sub, flags.metric, "l2, cosine or ip")->capture_default_str();
    add_model_option(*sub, flags.model, "Model recorded as the store's (default: models/resnet18-*.pt)");
    sub->add_option("--shards", flags.shards, "Make a store set of this many shards instead (placed by the set's rule)")
        ->check(CLI::Range(1, kMaxShards));
    return [sub, &flags, exe_dir] {
        if (!sub->parsed()) return;
        if (flags.shards > 0)
            return make_synthetic_set(std::filesystem::absolute(flags.store), model_path(flags, exe_dir), flags.count,
                                      flags.dimension, *parse_metric(flags.metric),
                                      *parse_index_spec(flags.index_kind, IndexSpec{}, nullptr), flags.shards);
        make_synthetic_store(std::filesystem::absolute(flags.store), model_path(flags, exe_dir), flags.count,
                             flags.dimension, *parse_metric(flags.metric),
                             *parse_index_spec(flags.index_kind, IndexSpec{}, nullptr));
    };
}

AnnBenchOptions ann_options(const BenchFlags& flags) {
    AnnBenchOptions options;
    options.count = flags.count;
    options.dimension = flags.dimension;
    options.queries = flags.queries;
    options.metric = *parse_metric(flags.metric);
    options.work_dir = flags.work_dir;
    for (const auto& text : flags.ann_specs) options.specs.push_back(*parse_index_spec(text, IndexSpec{}, nullptr));
    if (!flags.vectors_from.empty()) {
        auto all = store_vectors(flags.vectors_from, options.dimension);
        const size_t n = all.size() / options.dimension;
        if (n <= options.queries) throw Error("the store has too few vectors for that many queries");
        options.query_vectors.assign(all.end() - static_cast<long>(options.queries * options.dimension), all.end());
        all.resize((n - options.queries) * options.dimension);
        options.base = std::move(all);
    }
    return options;
}

Runner add_ann_bench(CLI::App& app, BenchFlags& flags) {
    auto* sub = app.add_subcommand("ann", "Index kinds on the same vectors: build, size, load, memory, queries/s, recall@10");
    sub->add_option("--count", flags.count, "Synthetic vectors (ignored with --vectors-from)")->capture_default_str();
    sub->add_option("--dimension", flags.dimension, "Dimension of synthetic vectors")->check(in_range(1, 65536))
        ->capture_default_str();
    sub->add_option("--queries", flags.queries, "Queries (from the same distribution, not in the base set)")
        ->capture_default_str();
    sub->add_option("--index", flags.ann_specs, "Index specs to measure (repeat the flag)")
        ->check(index_spec_validator())->capture_default_str();
    add_metric_option(*sub, flags.metric, "l2, cosine or ip")->capture_default_str();
    sub->add_option("--vectors-from", flags.vectors_from, "Use a store's real vectors: the last --queries of them "
                                                          "query the others");
    sub->add_option("--work-dir", flags.work_dir, "Where index files are written while measured")->capture_default_str();
    return [sub, &flags] {
        if (!sub->parsed()) return;
        bench_ann(ann_options(flags), [](const AnnBenchRow& r) {
            nlohmann::ordered_json row{{"bench", "ann"}, {"index", r.index}, {"knob", r.knob}, {"vectors", r.count},
                                       {"build_seconds", r.build_seconds}, {"file_mib", r.file_bytes / 1048576.0},
                                       {"load_seconds", r.load_seconds}, {"first_query_seconds", r.first_query_seconds},
                                       {"resident_mib", r.resident_mib},
                                       {"resident_after_queries_mib", r.resident_after_queries_mib},
                                       {"queries_per_second", r.queries_per_second}, {"recall_at_10", r.recall_at_10}};
            std::cout << row.dump() << std::endl;
        });
    };
}

// Run under mpirun/srun: the MPI exchange one served search costs, without the search.
Runner add_fanout_bench(CLI::App& app, BenchFlags& flags) {
    auto* sub = app.add_subcommand("fanout", "Under mpirun: broadcast of one query + gather of k hits per rank, p50/p99 µs");
    sub->add_option("--iterations", flags.iterations, "Round trips timed")->check(CLI::Range(1, 10000000))
        ->capture_default_str();
    sub->add_option("--dimension", flags.dimension, "Floats per query vector")->check(CLI::Range(1, 65536))
        ->capture_default_str();
    return [sub, &flags] {
        if (!sub->parsed()) return;
        const auto placement = job_placement_from_environment();
        if (!placement || !placement->mpi) throw Error("cbir bench fanout runs as an MPI job: mpirun -np R cbir bench fanout");
        auto job = join_mpi_job();
        const FanoutBench r = bench_fanout(*job, flags.iterations, flags.dimension, 10);
        if (job->rank() == 0) {
            nlohmann::ordered_json row{{"bench", "fanout"}, {"ranks", r.ranks}, {"iterations", r.iterations},
                                       {"p50_us", r.p50_us}, {"p99_us", r.p99_us}, {"mean_us", r.mean_us}};
            std::cout << row.dump() << std::endl;
        }
    };
}

}  // namespace

std::function<int()> add_bench_command(CLI::App& app, const char* argv0) {
    auto flags = std::make_shared<BenchFlags>();
    app.require_subcommand(1);
    const std::filesystem::path exe_dir = executable_dir(argv0);
    const std::vector<Runner> runners{add_inference_bench(app, *flags, exe_dir), add_decode_bench(app, *flags),
                                      add_stages_bench(app, *flags), add_pipeline_bench(app, *flags, exe_dir),
                                      add_features_bench(app, *flags, exe_dir),
                                      add_synth_store_bench(app, *flags, exe_dir), add_ann_bench(app, *flags),
                                      add_fanout_bench(app, *flags)};
    // The shared flags outlive the runners, which refer to them.
    return guarded_command([flags, runners] {
        for (const auto& run : runners) run();
        return static_cast<int>(kOk);
    });
}

}  // namespace cbir::cli
