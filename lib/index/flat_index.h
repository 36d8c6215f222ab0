#pragma once
// Exact search: every query is compared with every vector. Ground truth for the approximate indexes
// and the right choice for small collections.
#include <unordered_map>

#include "index/vector_index.h"

namespace cbir {

class FlatIndex final : public VectorIndex {
public:
    FlatIndex(int dimension, Metric metric);
    IndexKind kind() const override { return IndexKind::Flat; }
    Metric metric() const override { return metric_; }
    int dimension() const override { return dimension_; }
    size_t size() const override { return ids_.size(); }
    void add(int64_t id, const float* vector) override;
    void remove(const std::vector<int64_t>& ids) override;
    std::vector<Neighbor> search(const float* query, const SearchParams& params) const override;

private:
    int dimension_;
    Metric metric_;
    std::vector<int64_t> ids_;
    std::vector<float> vectors_;
    std::unordered_map<int64_t, size_t> slot_of_id_;
};

}  // namespace cbir
