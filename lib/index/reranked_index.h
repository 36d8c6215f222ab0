#pragma once
// Exact re-ranking of a compressed index's shortlist: IVF-PQ finds `factor` x k candidates from its
// codes, their full vectors are fetched (from the catalogue) and ranked exactly. Recall close to
// IVF-Flat's for a few milliseconds more, with only the codes in memory.
#include <functional>
#include <memory>

#include "index/vector_index.h"

namespace cbir {

// Fills `vectors` with ids.size() * dimension floats, in the order of ids; a missing id gets NaNs.
using VectorFetcher = std::function<void(const std::vector<int64_t>& ids, std::vector<float>& vectors)>;

class RerankedIndex final : public VectorIndex {
public:
    RerankedIndex(std::unique_ptr<VectorIndex> inner, VectorFetcher fetch, int factor = 10);
    std::string kind() const override { return inner_->kind(); }
    Metric metric() const override { return inner_->metric(); }
    int dimension() const override { return inner_->dimension(); }
    size_t size() const override { return inner_->size(); }
    void add(int64_t id, const float* vector) override { inner_->add(id, vector); }
    void remove(const std::vector<int64_t>& ids) override { inner_->remove(ids); }
    std::vector<Neighbor> search(const float* query, const SearchParams& params) const override;
    const VectorIndex& inner() const { return *inner_; }

private:
    std::unique_ptr<VectorIndex> inner_;
    VectorFetcher fetch_;
    int factor_;
};

}  // namespace cbir
