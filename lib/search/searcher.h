#pragma once
// `cbir query`: each query image's vector (from the catalogue when the file is indexed and
// unchanged, else embedded with the store's model) searched in the store's index.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "embed/embedder.h"
#include "index/metric.h"
#include "index/vector_index.h"
#include "store/catalogue.h"
#include "store/store.h"

namespace cbir {

struct QueryOptions {
    std::filesystem::path store_dir;
    std::optional<std::filesystem::path> model;  // must be the store's model when given
    int top_k = 10;
    int ef = 0;          // HNSW search breadth; 0 = the store's default
    int nprobe = 0;      // IVF lists visited; 0 = the store's default
    bool exact = false;  // flat search regardless of the store's index
    std::optional<float> max_distance;  // drop hits farther than this
    int batch = 8;
    int threads = 0;
    PrecisionRequest precision = PrecisionRequest::Default;  // see embed/precision.h
    bool fast_decode = false;  // refused on a store built without it; implied on one built with it
};

struct QueryHit {
    int rank = 0;  // 1-based
    float distance = 0.0f;
    int64_t id = 0;    // the catalogue row
    std::string path;  // absolute, as stored
};

struct QueryResult {
    std::filesystem::path query;  // as given
    std::vector<QueryHit> hits;
    std::string error;  // the query image could not be read; hits empty
};

struct QueryReport {
    Metric metric = Metric::L2;
    std::string index_kind;  // what was searched: hnsw, ivf, ivfpq or flat
    std::vector<QueryResult> results;
};

// Up to this many query images to embed, `cbir query` runs the model unoptimised: optimising and
// warming it up does not pay for a few images (and a server answers one-shot queries only for so many,
// with its model kept unoptimised too: lib/serve/served_query.h).
inline constexpr size_t kOneShotQueries = 16;

// The catalogue row of a query image that is indexed and unchanged (same path, size and mtime): its
// stored vector is used, no model is needed, and the image is its own first hit at distance 0.
std::optional<ImageRecord> current_record(Store& store, const std::filesystem::path& image);

// One vector searched in a store's index: ranked hits with their catalogue paths, none farther than
// max_distance. The one search path of `cbir query` and `cbir serve`.
std::vector<QueryHit> find_hits(const VectorIndex& index, const Catalogue& catalogue, const float* query,
                                const SearchParams& params, std::optional<float> max_distance);

// current_record's vector, or nullopt.
std::optional<std::vector<float>> stored_vector(Store& store, const std::filesystem::path& image);

// The vector of each query image: the one `stored` finds, else embedded with `model_store`'s model
// (one load for all, in batches by the pipeline `index` uses). An unreadable image gets its error in
// results[i].error (results[i].query is set for every i). Throws cbir::Error if the model cannot be used.
void query_vectors(Store& model_store,
                   const std::function<std::optional<std::vector<float>>(const std::filesystem::path&)>& stored,
                   const std::vector<std::filesystem::path>& images, const QueryOptions& options,
                   std::vector<std::vector<float>>& vectors, std::vector<QueryResult>& results);

// Throws cbir::Error when the store or the model cannot be used; an unreadable query image is
// reported in its QueryResult so the other queries still run.
QueryReport run_query(const std::vector<std::filesystem::path>& images, const QueryOptions& options);

}  // namespace cbir
