#pragma once
// The one interface every nearest-neighbour index implements. The flat (exact) index is the
// brute-force twin of the approximate ones: same calls, ground-truth answers.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "index/index_spec.h"
#include "index/metric.h"

namespace cbir {

struct Neighbor {
    int64_t id;      // the catalogue row id
    float distance;  // in the metric's convention, smaller is closer
};

struct SearchParams {
    int k = 10;
    int ef = 0;      // HNSW breadth of search; 0 = the index's default (never below k)
    int nprobe = 0;  // IVF lists visited; 0 = the index's default
};

// Fills `vectors` with ids.size() * dimension floats, in the order of ids; a missing id gets NaNs.
// How an index reaches the catalogue's full vectors (re-ranking, groups of identical vectors).
using VectorFetcher = std::function<void(const std::vector<int64_t>& ids, std::vector<float>& vectors)>;

class PayloadFile;
struct IndexFileHeader;
struct CatalogueState;

class VectorIndex {
public:
    virtual ~VectorIndex() = default;
    virtual IndexKind kind() const = 0;
    virtual Metric metric() const = 0;
    virtual int dimension() const = 0;
    virtual size_t size() const = 0;
    // Adds or replaces the vector stored under id. The vector is as the model produced it; the index
    // applies the metric's preparation (normalisation for cosine) itself.
    virtual void add(int64_t id, const float* vector) = 0;
    // Many at once (count * dimension floats). With replace false the caller promises the ids are
    // new, which spares the libraries a lookup.
    virtual void add_batch(const int64_t* ids, const float* vectors, size_t count, bool replace) {
        (void)replace;
        for (size_t i = 0; i < count; ++i) add(ids[i], vectors + i * static_cast<size_t>(dimension()));
    }
    // Drops ids (absent ones are ignored); they never appear in results again.
    virtual void remove(const std::vector<int64_t>& ids) = 0;
    // Nearest first; at most k results.
    virtual std::vector<Neighbor> search(const float* query, const SearchParams& params) const = 0;
    // Why the index should be built anew rather than grown, given the rows the catalogue holds
    // (an IVF index outgrowing its training, an HNSW graph full of tombstones); nothing if it is fine.
    virtual std::optional<std::string> rebuild_reason(size_t catalogue_rows) const {
        (void)catalogue_rows;
        return std::nullopt;
    }
    // The library's own bytes for an index file, and the header fields that describe them (kind,
    // dimension, metric, count, parameters). Indexes without a file (flat) throw.
    virtual void write_payload(PayloadFile& out, IndexFileHeader& header) const;
    // Writes the index file (grouped_index.h), as built from that state of the catalogue.
    virtual void save(const std::filesystem::path& path, const CatalogueState& built_from) const;
};

}  // namespace cbir
