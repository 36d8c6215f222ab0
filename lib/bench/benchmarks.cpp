#include "bench/benchmarks.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include <time.h>

#include "bench/synthetic.h"
#include "cluster/communicator.h"
#include "image/decode.h"
#include "image/exif_orientation.h"
#include "image/image_file.h"
#include "image/image_header.h"
#include "image/pil_resize.h"
#include "image/preprocess.h"
#include "pipeline/embedding_pipeline.h"
#include "pipeline/model_resolution.h"
#include "pipeline/precision_choice.h"
#include "pipeline/prepare.h"
#include "shard/store_set.h"
#include "store/derived_index.h"
#include "store/store.h"
#include "util/error.h"
#include "util/file_stat.h"
#include "util/hash.h"

namespace cbir {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace

InferenceBench bench_inference(const std::filesystem::path& model, int batch, int threads, bool optimize,
                               PrecisionRequest precision, double seconds) {
    EmbedderOptions options;
    options.threads = threads;
    options.optimize = optimize;
    auto embedder = load_embedder(model, options, precision, nullptr);
    InferenceBench result;
    result.precision = embedder->precision();
    result.load = embedder->load_times();
    result.batch = batch;
    result.threads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
    result.optimized = optimize;
    const PreprocessSpec spec;
    std::vector<float> inputs(spec.values_per_image() * static_cast<size_t>(batch));
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto& v : inputs) v = normal(rng);
    embedder->embed(inputs.data(), batch);  // warm-up at this batch size
    const auto start = Clock::now();
    while (result.batch_seconds.size() < 5 ||
           std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
        const auto t = Clock::now();
        embedder->embed(inputs.data(), batch);
        result.batch_seconds.push_back(std::chrono::duration<double>(Clock::now() - t).count());
    }
    result.images_per_second = batch / median(result.batch_seconds);
    return result;
}

DecodeBench bench_decode(const std::vector<std::filesystem::path>& files, int readers) {
    DecodeBench result;
    result.readers = readers > 0 ? readers : static_cast<int>(std::thread::hardware_concurrency());
    std::atomic<size_t> next{0}, failed{0};
    const PreprocessSpec spec;
    const auto start = Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < result.readers; ++t)
        threads.emplace_back([&] {
            for (size_t i; (i = next.fetch_add(1)) < files.size();)
                if (!prepare_image(files[i], spec).ok()) ++failed;
        });
    for (auto& t : threads) t.join();
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    result.images = files.size();
    result.failed = failed;
    result.images_per_second = result.seconds > 0 ? files.size() / result.seconds : 0;
    return result;
}

StageBench bench_stages(const std::vector<std::filesystem::path>& files, int fast_min_side) {
    StageBench r;
    r.fast_min_side = fast_min_side;
    const PreprocessSpec spec;
    std::vector<float> input(spec.values_per_image());
    // CPU time of this thread, not wall time: on a machine others load, a stage's share of the work
    // is still measured (wall time counts the time the thread waited for a core).
    auto cpu_seconds = [] {
        timespec t{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return t.tv_sec + t.tv_nsec * 1e-9;
    };
    auto timed = [&](double& total, auto&& step) {
        const double start = cpu_seconds();
        auto result = step();
        total += cpu_seconds() - start;
        return result;
    };
    for (size_t i = 0; i < files.size(); ++i) {
        ++r.images;
        const ImageFile file = timed(r.read, [&] { return read_image_file(files[i]); });
        if (!file.ok()) {
            ++r.failed;
            continue;
        }
        timed(r.sha256, [&] { return sha256_hex(file.bytes.data(), file.bytes.size()); });
        DecodedImage turbo, opencv;
        for (int pass = 0; pass < 2; ++pass) {
            if ((pass == 0) == (i % 2 == 0))
                turbo = timed(r.decode_turbo, [&] { return decode_image_bytes(file.bytes); });
            else
                opencv = timed(r.decode_opencv, [&] { return decode_image_bytes_with_opencv(file.bytes); });
        }
        if (!turbo.ok() || !opencv.ok()) {
            ++r.failed;
            continue;
        }
        if (turbo.rgb.size() != opencv.rgb.size() || cv::norm(turbo.rgb, opencv.rgb, cv::NORM_INF) != 0)
            ++r.jpeg_pixels_differ;
        r.megapixels += turbo.rgb.total() / 1e6;
        timed(r.exif, [&] { return jpeg_exif_orientation(file.bytes); });
        const cv::Mat resized =
            timed(r.resize, [&] { return resize_like_pil_bilinear(turbo.rgb, spec.width, spec.height); });
        // Normalising alone: preprocess_rgb of an image already at the model's size skips the resize.
        timed(r.normalize, [&] {
            preprocess_rgb(resized, spec, input.data());
            return 0;
        });
        if (fast_min_side > 0) {
            const HeaderRead header = read_image_header(file.bytes);
            const int reduction = header.header.format == ImageFormat::jpeg
                                      ? fast_decode_reduction(header.header.width, header.header.height, fast_min_side)
                                      : 1;
            const DecodedImage fast = timed(r.decode_fast, [&] { return decode_image_bytes(file.bytes, reduction); });
            if (fast.ok())
                timed(r.resize_fast, [&] { return resize_like_pil_bilinear(fast.rgb, spec.width, spec.height); });
        }
    }
    return r;
}

PipelineBench bench_pipeline(const std::vector<std::filesystem::path>& files, const std::filesystem::path& model,
                             int readers, int threads, int batch) {
    EmbedderOptions embedder_options;
    embedder_options.threads = threads;
    auto embedder = Embedder::load(model, embedder_options);
    PipelineBench r;
    r.images = files.size();
    r.readers = readers > 0 ? readers : static_cast<int>(std::thread::hardware_concurrency());
    r.threads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
    r.batch = batch;
    PipelineTimes times;
    PipelineOptions options;
    options.batch = batch;
    options.reader_threads = readers;
    options.times = &times;
    const auto start = Clock::now();
    run_embedding_pipeline(files, *embedder, PreprocessSpec{}, options, PipelineCallbacks{});
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.images_per_second = r.seconds > 0 ? files.size() / r.seconds : 0;
    r.waiting_seconds = times.waiting_seconds;
    r.inference_seconds = times.inference_seconds;
    return r;
}

void make_synthetic_store(const std::filesystem::path& store_dir, const std::filesystem::path& model, size_t count,
                          int dimension, Metric metric, const IndexSpec& index) {
    if (Store::exists(store_dir)) throw Error(store_dir.string() + ": a store already exists here");
    const StoreSettings settings = new_store_settings(describe_model(model), dimension, metric, index);
    auto store = Store::create(store_dir, settings);

    ImageRecord record;
    record.sha256 = "synthetic";
    constexpr size_t kChunk = 10000;  // generated and committed a chunk at a time: bounded memory
    for (size_t i = 0; i < count;) {
        const size_t n = std::min(kChunk, count - i);
        const auto vectors = synthetic_features(n, dimension, static_cast<unsigned>(1000 + i / kChunk));
        Transaction txn(store->catalogue());
        for (size_t j = 0; j < n; ++j, ++i) {
            record.vector.assign(vectors.begin() + static_cast<long>(j * dimension),
                                 vectors.begin() + static_cast<long>((j + 1) * dimension));
            record.path = "/synthetic/" + std::to_string(i) + ".jpg";
            store->catalogue().upsert(record);
        }
        txn.commit();
    }
    update_index_file(*store);
}

void make_synthetic_set(const std::filesystem::path& set_dir, const std::filesystem::path& model, size_t count,
                        int dimension, Metric metric, const IndexSpec& index, int shards) {
    if (StoreSet::exists(set_dir) || Store::exists(set_dir)) throw Error(set_dir.string() + ": a store or set already exists here");
    const ModelFile model_file = describe_model(model);
    SetManifest manifest;
    manifest.shards = shards;
    manifest.root = "/synthetic";
    manifest.model_path = model_file.path.string();
    manifest.model_sha256 = model_file.sha256;
    manifest.metric = metric;
    manifest.index = index;
    const StoreSet set = StoreSet::create_or_join(set_dir, manifest);
    const StoreSettings settings = new_store_settings(model_file, dimension, metric, index);
    std::vector<std::unique_ptr<Store>> stores;
    for (int shard = 0; shard < shards; ++shard) stores.push_back(Store::create(set.shard_dir(shard), settings));

    ImageRecord record;
    record.sha256 = "synthetic";
    constexpr size_t kChunk = 10000;  // the same vectors, chunk by chunk, as make_synthetic_store's
    for (size_t i = 0; i < count;) {
        const size_t n = std::min(kChunk, count - i);
        const auto vectors = synthetic_features(n, dimension, static_cast<unsigned>(1000 + i / kChunk));
        std::vector<std::unique_ptr<Transaction>> transactions;
        for (auto& store : stores) transactions.push_back(std::make_unique<Transaction>(store->catalogue()));
        for (size_t j = 0; j < n; ++j, ++i) {
            record.vector.assign(vectors.begin() + static_cast<long>(j * dimension),
                                 vectors.begin() + static_cast<long>((j + 1) * dimension));
            record.path = "/synthetic/" + std::to_string(i) + ".jpg";
            stores[static_cast<size_t>(set.shard_of(record.path))]->catalogue().upsert(record);
        }
        for (auto& transaction : transactions) transaction->commit();
    }
    for (auto& store : stores) update_index_file(*store);
}

FanoutBench bench_fanout(Communicator& job, size_t iterations, int dimension, int k) {
    // Sizes as set_operations.cpp encodes them: a search operation, and k hits with a short path each.
    const size_t query_bytes = 1 + 8 + static_cast<size_t>(dimension) * sizeof(float) + 4 * 3 + 1 + 4 + 16;
    const size_t answer_bytes = 16 + static_cast<size_t>(k) * (4 + 8 + 8 + 24);
    std::vector<double> micros;
    const std::string answer(answer_bytes, 'h');
    for (size_t i = 0; i < iterations + 10; ++i) {  // the first 10 warm up
        std::string message = job.rank() == 0 ? std::string(query_bytes, 'q') : std::string();
        const auto started = std::chrono::steady_clock::now();
        job.broadcast(message, 0);
        const auto answers = job.gather(answer, 0);
        const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count();
        if (i >= 10) micros.push_back(us);
    }
    FanoutBench out;
    out.ranks = job.size();
    out.iterations = iterations;
    if (micros.empty()) return out;
    std::sort(micros.begin(), micros.end());
    out.p50_us = micros[micros.size() / 2];
    out.p99_us = micros[std::min(micros.size() - 1, micros.size() * 99 / 100)];
    double sum = 0;
    for (double us : micros) sum += us;
    out.mean_us = sum / static_cast<double>(micros.size());
    return out;
}

}  // namespace cbir
