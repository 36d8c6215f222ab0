#pragma once
// The embedding pipeline shared by `index` and `embed`: reader threads read, decode and preprocess
// files ahead of inference into a bounded queue (so decoding a large JPEG overlaps the previous
// batch's inference, and memory stays bounded), and the calling thread embeds them in batches.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "embed/embedder.h"
#include "pipeline/prepare.h"

namespace cbir {

// Where the calling thread's time went (cbir bench pipeline).
struct PipelineTimes {
    double waiting_seconds = 0;    // for the readers: the queue was empty
    double inference_seconds = 0;  // in embed()
};

struct PipelineOptions {
    int batch = 8;
    int reader_threads = 0;  // 0 = all cores
    PipelineTimes* times = nullptr;  // filled when set
};

struct PipelineCallbacks {
    // In the calling thread, in batches: indices into `files`, their images (input already released)
    // and images.size() * dimension floats.
    std::function<void(const std::vector<size_t>& indices, const std::vector<PreparedImage>& images,
                       const std::vector<float>& vectors, int dimension)>
        on_batch;
    std::function<void(size_t index, const std::string& reason)> on_failure;
    std::function<void(size_t done, size_t total)> on_progress;
};

// Stops early, after embedding what was already prepared, once stop_requested() is set.
void run_embedding_pipeline(const std::vector<std::filesystem::path>& files, Embedder& embedder,
                            const PreprocessSpec& spec, const PipelineOptions& options,
                            const PipelineCallbacks& callbacks);

}  // namespace cbir
