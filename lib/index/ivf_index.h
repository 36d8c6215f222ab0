#pragma once
// Inverted-file indexes from FAISS: IVF-Flat (exact vectors in each list) and IVF-PQ (product-
// quantized codes: 1M 512-d vectors in ~70 MB). Both need training on a sample before vectors are
// added; both take catalogue ids directly. Stored in the cbir index container (index_file.h).
#include <memory>

#include "index/index_file.h"
#include "index/index_spec.h"
#include "index/vector_index.h"

namespace faiss {
struct IndexIVF;
struct Index;
}  // namespace faiss

namespace cbir {

class IvfIndex final : public VectorIndex {
public:
    // spec.kind Ivf or IvfPq; nlist must be set (> 0); spec.ivf_nprobe is the default nprobe.
    IvfIndex(int dimension, Metric metric, const IndexSpec& spec);
    ~IvfIndex() override;
    // From a verified file's payload (index_file.h); throws IndexFileError naming `name`.
    // nlist and PQ come from the header, the default nprobe from `search_defaults`.
    static std::unique_ptr<IvfIndex> from_payload(std::shared_ptr<const MappedPayload> payload, const IndexFileHeader& header,
                                                  const IndexSpec& search_defaults, const std::string& name);
    void write_payload(PayloadFile& out, IndexFileHeader& header) const override;

    // k-means on `count` vectors (raw model output; prepared here for the metric).
    void train(const float* vectors, size_t count);
    bool trained() const;
    size_t trained_on() const { return trained_on_; }
    // Adds many at once (FAISS is much faster in batches). With replace, ids already present are
    // removed first; a fresh build of distinct ids skips that.
    void add_batch(const int64_t* ids, const float* vectors, size_t count, bool replace = true) override;

    IndexKind kind() const override { return spec_.kind; }
    Metric metric() const override { return metric_; }
    int dimension() const override { return dimension_; }
    size_t size() const override;
    void add(int64_t id, const float* vector) override { add_batch(&id, vector, 1); }
    void remove(const std::vector<int64_t>& ids) override;
    // params.nprobe lists are visited; 0 = the default.
    std::vector<Neighbor> search(const float* query, const SearchParams& params) const override;
    // Retrained once the collection is ten times what it was trained on.
    std::optional<std::string> rebuild_reason(size_t catalogue_rows) const override;
    const IndexSpec& spec() const { return spec_; }
    int nlist() const;
    // Whether the inverted lists are still read from the mapped file (each list checked on its first
    // visit); the first change copies them into memory.
    bool reads_in_place() const { return mapped_ != nullptr; }

private:
    IvfIndex(int dimension, Metric metric, const IndexSpec& spec, std::unique_ptr<faiss::Index> index);
    void skip_precomputed_tables();
    void own_lists();
    int dimension_;
    Metric metric_;
    IndexSpec spec_;
    size_t trained_on_ = 0;
    std::shared_ptr<const MappedPayload> mapped_;  // outlives index_, whose lists may point into it
    std::unique_ptr<faiss::Index> index_;
    faiss::IndexIVF* ivf_ = nullptr;  // index_ as an IVF
};

}  // namespace cbir
