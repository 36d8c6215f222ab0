#pragma once
// Approximate search with hnswlib's HNSW graph, stored in the cbir index container (index_file.h).
// Two kinds: HNSW over the float vectors, and HNSW,SQ8 over 8-bit codes (sq8_space.h), whose
// distances are approximate (RerankedIndex ranks its shortlist exactly).
//
// Loaded from a file, the graph's level-0 records (the vectors and their links: nearly all of the
// file) stay in the mapped file instead of being copied: hnswlib reads them in place. Every record
// is checked (its chunk checksums, its links) the first time a distance to it is computed, which
// in hnswlib precedes any read of its links, flags or label; nothing is searched from an unchecked
// record. The first change (add, remove, grow) copies the records into memory, once all are checked.
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

class ScalarQuantizer;
class RecordGuard;

class HnswIndex final : public VectorIndex {
public:
    // M, ef_construction and the default ef_search from the spec; spec.kind Hnsw or HnswSq8 (which
    // must be trained before vectors are added).
    HnswIndex(int dimension, Metric metric, const IndexSpec& spec, size_t capacity);
    ~HnswIndex() override;
    // From an index file's payload (index_file.h); throws IndexFileError naming `name`. M and
    // ef_construction come from the header, the default ef_search from `search_defaults`. The index
    // keeps the mapping for as long as it reads records from it.
    static std::unique_ptr<HnswIndex> from_payload(std::shared_ptr<const MappedPayload> payload,
                                                   const IndexFileHeader& header, const IndexSpec& search_defaults,
                                                   const std::string& name);
    void write_payload(PayloadFile& out, IndexFileHeader& header) const override;

    // SQ8: learns each dimension's range from `count` vectors (raw model output).
    void train(const float* vectors, size_t count);
    size_t trained_on() const { return trained_on_; }

    IndexKind kind() const override { return spec_.kind; }
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
    // Compacted once a tenth of the graph is tombstones; SQ8 retrained at ten times its sample's size.
    std::optional<std::string> rebuild_reason(size_t catalogue_rows) const override;
    // Whether the graph's records are still read from the mapped file.
    bool reads_in_place() const { return mapped_records_ != nullptr; }

private:
    HnswIndex(int dimension, Metric metric, const IndexSpec& spec);
    // The vector as the graph stores it: prepared for the metric, then quantized for SQ8.
    void encode(const float* vector, std::vector<float>& prepared, std::vector<uint8_t>& code) const;
    // Checks every record and copies them into memory: before the graph changes.
    void own_records();
    void check_all_records() const;
    int dimension_;
    Metric metric_;
    IndexSpec spec_;
    size_t trained_on_ = 0;
    std::unique_ptr<ScalarQuantizer> quantizer_;
    std::unique_ptr<hnswlib::SpaceInterface<float>> space_;
    std::shared_ptr<const MappedPayload> mapped_;
    std::unique_ptr<RecordGuard> guard_;
    char* mapped_records_ = nullptr;  // the graph's level-0 records while they are in the mapped file
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph_;
    std::mutex resize_mutex_;
};

}  // namespace cbir
