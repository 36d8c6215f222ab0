#pragma once
// Approximate search with hnswlib's HNSW graph, stored in the cbir index container (index_file.h).
#include <memory>
#include <mutex>

#include "index/index_file.h"
#include "index/index_spec.h"
#include "index/vector_index.h"

namespace hnswlib {
template <typename T> class HierarchicalNSW;
template <typename T> class SpaceInterface;
}  // namespace hnswlib

namespace cbir {

class HnswIndex final : public VectorIndex {
public:
    // M, ef_construction and the default ef_search from the spec.
    HnswIndex(int dimension, Metric metric, const IndexSpec& spec, size_t capacity);
    ~HnswIndex() override;
    // From a verified file's payload (index_file.h); throws IndexFileError naming `name`.
    // M and ef_construction come from the header, the default ef_search from `search_defaults`.
    static std::unique_ptr<HnswIndex> from_payload(const MappedPayload& payload, const IndexFileHeader& header,
                                                   const IndexSpec& search_defaults, const std::string& name);
    void write_payload(PayloadFile& out, IndexFileHeader& header) const override;

    IndexKind kind() const override { return IndexKind::Hnsw; }
    Metric metric() const override { return metric_; }
    int dimension() const override { return dimension_; }
    size_t size() const override;
    // Thread-safe for distinct ids once capacity is reserved.
    void add(int64_t id, const float* vector) override;
    // On all cores (hnswlib locks per node).
    void add_batch(const int64_t* ids, const float* vectors, size_t count, bool replace) override;
    void reserve(size_t capacity);
    // Tombstones: hnswlib marks the nodes deleted and skips them in results; the graph keeps them
    // until a rebuild compacts it.
    void remove(const std::vector<int64_t>& ids) override;
    size_t tombstones() const;
    std::vector<Neighbor> search(const float* query, const SearchParams& params) const override;
    // Compacted once a tenth of the graph is tombstones.
    std::optional<std::string> rebuild_reason(size_t catalogue_rows) const override;
private:
    HnswIndex(int dimension, Metric metric, const IndexSpec& spec);
    int dimension_;
    Metric metric_;
    IndexSpec spec_;
    std::unique_ptr<hnswlib::SpaceInterface<float>> space_;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph_;
    std::mutex resize_mutex_;
};

}  // namespace cbir
