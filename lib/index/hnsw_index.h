#pragma once
// Approximate search with hnswlib's HNSW graph, stored in the cbir index container (index_file.h).
#include <memory>
#include <mutex>

#include "index/index_file.h"
#include "index/vector_index.h"

namespace hnswlib {
template <typename T> class HierarchicalNSW;
template <typename T> class SpaceInterface;
}  // namespace hnswlib

namespace cbir {

struct HnswParams {
    int m = 32;                 // graph degree (32: recall@10 0.98 at 1M vectors, ef 64; 16 gave 0.87)
    int ef_construction = 200;  // build-time breadth
    int ef_search = 64;         // query-time breadth when the caller gives none (raised to k)
};

class HnswIndex final : public VectorIndex {
public:
    HnswIndex(int dimension, Metric metric, const HnswParams& params, size_t capacity);
    ~HnswIndex() override;
    // From a verified file's payload (index_file.h); throws IndexFileError naming `name`.
    static std::unique_ptr<HnswIndex> from_payload(const MappedPayload& payload, const IndexFileHeader& header,
                                                   int ef_search, const std::string& name);
    void write_payload(PayloadFile& out, IndexFileHeader& header) const override;

    std::string kind() const override { return "hnsw"; }
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
    const HnswParams& params() const { return params_; }

private:
    HnswIndex(int dimension, Metric metric, const HnswParams& params);
    int dimension_;
    Metric metric_;
    HnswParams params_;
    std::unique_ptr<hnswlib::SpaceInterface<float>> space_;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph_;
    std::mutex resize_mutex_;
};

}  // namespace cbir
