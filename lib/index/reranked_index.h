#pragma once
// Exact re-ranking of a compressed index's shortlist: IVF-PQ finds `factor` x k candidates from its
// codes, their full vectors are fetched (from the catalogue) and ranked exactly. Recall close to
// IVF-Flat's for a few milliseconds more, with only the codes in memory.
#include <functional>
#include <memory>

#include "index/index_file.h"
#include "index/vector_index.h"

namespace cbir {

class RerankedIndex final : public VectorIndex {
public:
    RerankedIndex(std::unique_ptr<VectorIndex> inner, VectorFetcher fetch, int factor = 10);
    IndexKind kind() const override { return inner_->kind(); }
    Metric metric() const override { return inner_->metric(); }
    int dimension() const override { return inner_->dimension(); }
    size_t size() const override { return inner_->size(); }
    void add(int64_t id, const float* vector) override { inner_->add(id, vector); }
    void add_batch(const int64_t* ids, const float* vectors, size_t count, bool replace) override {
        inner_->add_batch(ids, vectors, count, replace);
    }
    std::optional<std::string> rebuild_reason(size_t rows) const override { return inner_->rebuild_reason(rows); }
    void remove(const std::vector<int64_t>& ids) override { inner_->remove(ids); }
    std::vector<Neighbor> search(const float* query, const SearchParams& params) const override;
    void save(const std::filesystem::path& path, const CatalogueState& built_from) const override {
        inner_->save(path, built_from);
    }
    const VectorIndex& inner() const { return *inner_; }

private:
    std::unique_ptr<VectorIndex> inner_;
    VectorFetcher fetch_;
    int factor_;
};

}  // namespace cbir
