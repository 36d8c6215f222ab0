#pragma once
// `cbir index`: walk -> read & decode & preprocess (reader threads) -> embed in batches -> write
// catalogue rows (one transaction per batch) -> bring the ANN index file up to date.
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "index/hnsw_index.h"
#include "index/index_spec.h"
#include "embed/embedder.h"
#include "index/metric.h"

namespace cbir {

struct IndexOptions {
    std::filesystem::path store_dir;
    std::optional<std::filesystem::path> model;  // default: the store's model, or the fetched one
    std::filesystem::path executable_dir;        // where to look for the default model
    // Settings of a new store; for an existing store they must match it when given.
    std::optional<Metric> metric;
    std::optional<IndexSpec> index;  // default: HNSW32
    IndexParameters index_parameters;  // given apart from `index` (which already includes them)
    int batch = 8;
    int threads = 0;         // LibTorch intra-op threads; 0 = all cores
    int reader_threads = 0;  // decode threads; 0 = all cores
    PrecisionRequest precision = PrecisionRequest::Default;  // see embed/precision.h
    bool fast_decode = false;  // a new store's recipe; an existing store's must then be it (model_resolution.h)
    bool prune = false;  // also remove rows under the input folders whose files are gone
    // Only files whose catalogue key this accepts are indexed (a shard of a set); all when empty.
    std::function<bool(const std::string& catalogue_key)> owns;
    // A caller indexing several stores with one model passes a cache: given the model and the
    // function that loads it, it returns the model it already holds or calls `load` (LibTorch's start
    // and the model's load are then paid once). Default: `load` every run.
    std::function<std::shared_ptr<Embedder>(const std::filesystem::path& model,
                                            const std::function<std::unique_ptr<Embedder>()>& load)> load_model;
};

struct IndexSummary {
    size_t considered = 0;
    size_t added = 0;
    size_t updated = 0;
    size_t unchanged = 0;
    size_t moved = 0;   // known content at a new path: the row follows the file, nothing embedded
    size_t copied = 0;  // known content at a second path: the vector is reused, nothing embedded
    size_t pruned = 0;
    bool interrupted = false;
    size_t failed = 0;
    double seconds = 0.0;
    size_t store_count = 0;

    // Adds another run's counts (a set's shards, one after another).
    IndexSummary& operator+=(const IndexSummary& other);
};

struct IndexCallbacks {
    std::function<void(const std::filesystem::path&, const std::string& reason)> on_failure;
    std::function<void(size_t done, size_t total)> on_progress;
};

// Throws cbir::Error for problems that stop the run (no model, model mismatch, unwritable store).
IndexSummary run_index(const std::vector<std::filesystem::path>& inputs, const IndexOptions& options,
                       const IndexCallbacks& callbacks);

}  // namespace cbir
