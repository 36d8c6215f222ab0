#pragma once
// Making an index: the one path by which a store's index and `cbir bench ann`'s are built.
#include <functional>
#include <memory>

#include "index/index_spec.h"
#include "index/vector_index.h"

namespace cbir {

// Visits a collection's rows in chunks (count ids, count * dimension floats), as often as called:
// an IVF build reads it twice, once for the training sample and once to add.
using ChunkVisitor = std::function<void(const int64_t* ids, const float* vectors, size_t count)>;
using RowChunks = std::function<void(const ChunkVisitor& visit)>;

// The index of `spec` over `rows` rows: exact (flat) where the spec searches them exactly
// (IndexSpec::searches_exactly), else the ANN index (IVF trained on an even sample of the rows,
// nlist chosen from their number when the spec leaves it open) with identical vectors grouped
// (grouped_index.h), which reads vectors back through `fetch`.
std::unique_ptr<VectorIndex> build_index(const IndexSpec& spec, int dimension, Metric metric, size_t rows,
                                         const RowChunks& chunks, VectorFetcher fetch);

}  // namespace cbir
