#pragma once
// 8-bit scalar quantization for the compressed HNSW kind (HNSW32,SQ8): each dimension's range,
// learnt from a sample, is cut into 255 steps, so a 512-d vector takes 512 bytes instead of 2 KiB.
// The graph is built and searched on the codes (Sq8Space, an hnswlib space); the shortlist is then
// ranked exactly from the float vectors (RerankedIndex), as usearch does. (hnswlib's headers may be
// included by one file only: hnsw_index.cpp wraps these functions in an hnswlib space.)
#include <cstdint>
#include <string>
#include <vector>

#include "index/metric.h"

namespace cbir {

class ScalarQuantizer {
public:
    explicit ScalarQuantizer(int dimension);
    // Each dimension's minimum and maximum over `count` vectors (already prepared for the metric).
    void train(const float* vectors, size_t count);
    void encode(const float* vector, uint8_t* code) const;
    int dimension() const { return static_cast<int>(minimum_.size()); }
    const std::vector<float>& minimum() const { return minimum_; }
    const std::vector<float>& step() const { return step_; }
    // The parameters as stored in an index file, and back (throws IndexFileError on nonsense).
    std::string serialize() const;
    void deserialize(const unsigned char* bytes, size_t size, const std::string& name);
    static size_t serialized_size(int dimension) { return 8 * static_cast<size_t>(dimension); }

private:
    std::vector<float> minimum_;
    std::vector<float> step_;  // (max - min) / 255, never 0
};

// Distances between two codes, in the metric's convention (squared L2, or 1 - dot product for ip
// and cosine), computed on the decoded values; in hnswlib's distance-function form.
struct Sq8Distance {
    Sq8Distance(const ScalarQuantizer& quantizer, Metric metric);
    size_t dimension = 0;
    std::vector<float> weight;  // step^2
    std::vector<float> cross;   // ip: min * step
    float constant = 0;         // ip: sum of min^2
    float (*function)(const void*, const void*, const void*) = nullptr;  // called with `this` as the last argument
};

}  // namespace cbir
