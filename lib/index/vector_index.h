#pragma once
// The one interface every nearest-neighbour index implements. The flat (exact) index is the
// brute-force twin of the approximate ones: same calls, ground-truth answers.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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

class VectorIndex {
public:
    virtual ~VectorIndex() = default;
    virtual std::string kind() const = 0;
    virtual Metric metric() const = 0;
    virtual int dimension() const = 0;
    virtual size_t size() const = 0;
    // Adds or replaces the vector stored under id. The vector is as the model produced it; the index
    // applies the metric's preparation (normalisation for cosine) itself.
    virtual void add(int64_t id, const float* vector) = 0;
    // Drops ids (absent ones are ignored); they never appear in results again.
    virtual void remove(const std::vector<int64_t>& ids) = 0;
    // Nearest first; at most k results.
    virtual std::vector<Neighbor> search(const float* query, const SearchParams& params) const = 0;
};

}  // namespace cbir
