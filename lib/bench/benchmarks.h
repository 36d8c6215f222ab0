#pragma once
// Measurements behind `cbir bench`: each stage alone (inference, decode+preprocess), and synthetic
// stores for timing queries at sizes no photo folder here has.
#include <filesystem>
#include <vector>

#include "embed/embedder.h"
#include "index/hnsw_index.h"
#include "index/index_spec.h"
#include "index/metric.h"

namespace cbir {

struct InferenceBench {
    EmbedderLoadTimes load;
    int batch = 0;
    int threads = 0;
    bool optimized = false;
    Precision precision = Precision::Float32;  // as run (int8 for a quantized model)
    std::vector<double> batch_seconds;  // one per timed batch
    double images_per_second = 0;       // from the median batch
};

// Random inputs (inference does not care what the pixels are); at least `seconds` of timed batches.
InferenceBench bench_inference(const std::filesystem::path& model, int batch, int threads, bool optimize,
                               PrecisionRequest precision, double seconds);

struct DecodeBench {
    size_t images = 0;
    size_t failed = 0;
    int readers = 0;
    double seconds = 0;
    double images_per_second = 0;
};

// Read + decode + preprocess every file with `readers` threads, no inference.
DecodeBench bench_decode(const std::vector<std::filesystem::path>& files, int readers);

// Where the time of preparing one image goes, stage by stage, in one thread: each stage's total
// CPU seconds over the files (thread CPU time, so that other load on the machine does not count). The JPEG decoders are timed on the same file one after the other, which
// goes first alternating from file to file, so that load and caches treat both alike.
struct StageBench {
    size_t images = 0;
    size_t failed = 0;
    size_t jpeg_pixels_differ = 0;  // JPEGs whose TurboJPEG and OpenCV decodes are not the same pixels
    double megapixels = 0;          // decoded, summed
    double read = 0;                // open + size/header checks + read whole
    double sha256 = 0;              // the file's identity
    double decode_opencv = 0;       // checks + OpenCV imdecode (EXIF applied inside)
    double decode_turbo = 0;        // checks + TurboJPEG + EXIF (decode_image_bytes)
    double exif = 0;                // reading the orientation alone (part of decode_turbo)
    double resize = 0;              // Pillow-exact resize to the model's input
    double normalize = 0;           // to float CHW, ImageNet mean/std
    // --fast-decode's decode (DCT-scaled to keep the shorter side >= min_side) and its resize.
    int fast_min_side = 0;
    double decode_fast = 0;
    double resize_fast = 0;
};
StageBench bench_stages(const std::vector<std::filesystem::path>& files, int fast_min_side);

struct PipelineBench {
    size_t images = 0;
    int readers = 0;
    int threads = 0;
    int batch = 0;
    double seconds = 0;
    double images_per_second = 0;
    double waiting_seconds = 0;    // the inference thread waiting for prepared images (the queue empty)
    double inference_seconds = 0;  // in the forward pass
};
// The index pipeline without a store: `readers` decode threads feeding inference on `threads`.
PipelineBench bench_pipeline(const std::vector<std::filesystem::path>& files, const std::filesystem::path& model,
                             int readers, int threads, int batch);

// A store of `count` synthetic clustered vectors (paths /synthetic/N.jpg) recorded as built by
// `model`, with its index built. For timing queries and index builds.
void make_synthetic_store(const std::filesystem::path& store_dir, const std::filesystem::path& model, size_t count,
                          int dimension, Metric metric, const IndexSpec& index);

// The same `count` vectors as a store set of `shards` shards (root /synthetic: each path placed by
// the set's rule), every shard's index built. For timing a set served or queried by several ranks.
void make_synthetic_set(const std::filesystem::path& set_dir, const std::filesystem::path& model, size_t count,
                        int dimension, Metric metric, const IndexSpec& index, int shards);

class Communicator;

struct FanoutBench {
    int ranks = 0;
    size_t iterations = 0;
    double p50_us = 0;
    double p99_us = 0;
    double mean_us = 0;
};

// What `cbir serve` on a set adds to every search, without the search: rank 0 broadcasts one query's
// worth of bytes (a 512-float vector and its parameters), every rank answers k hits' worth, rank 0
// gathers them; timed on rank 0 over `iterations` round trips (every rank must call it).
FanoutBench bench_fanout(Communicator& job, size_t iterations, int dimension, int k);

}  // namespace cbir
