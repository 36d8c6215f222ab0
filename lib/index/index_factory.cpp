#include "index/index_factory.h"

#include <fmt/format.h>

#include "index/flat_index.h"
#include "index/grouped_index.h"
#include "index/hnsw_index.h"
#include "index/ivf_index.h"
#include "util/log.h"

namespace cbir {
namespace {

// Training needs a sample, not the collection: `sample` rows at an even stride.
std::vector<float> training_sample(const IndexSpec& spec, int dimension, size_t rows, size_t sample, const RowChunks& chunks) {
    const size_t stride = std::max<size_t>(1, rows / std::max<size_t>(sample, 1));
    std::vector<float> training;
    size_t row = 0, taken = 0;
    chunks([&](const int64_t*, const float* vectors, size_t count) {
        for (size_t i = 0; i < count; ++i, ++row)
            if (row % stride == 0 && taken < sample) {
                training.insert(training.end(), vectors + i * dimension, vectors + (i + 1) * dimension);
                ++taken;
            }
    });
    log_notice(fmt::format("training {} on {} of {} vectors", spec.describe(), taken, rows));
    return training;
}

std::unique_ptr<IvfIndex> trained_ivf(IndexSpec spec, int dimension, Metric metric, size_t rows, const RowChunks& chunks) {
    if (spec.ivf_nlist <= 0) spec.ivf_nlist = choose_ivf_nlist(rows);
    if (rows < static_cast<size_t>(spec.ivf_nlist) * 39)
        log_warning(fmt::format("{} vectors give fewer than 39 per list for {} (poor centroids)", rows, spec.describe()));
    const auto training = training_sample(spec, dimension, rows, spec.ivf_training_size(rows), chunks);
    auto index = std::make_unique<IvfIndex>(dimension, metric, spec);
    index->train(training.data(), training.size() / dimension);
    return index;
}

std::unique_ptr<HnswIndex> trained_hnsw(const IndexSpec& spec, int dimension, Metric metric, size_t rows, const RowChunks& chunks) {
    auto index = std::make_unique<HnswIndex>(dimension, metric, spec, rows);
    if (spec.kind == IndexKind::HnswSq8) {
        const auto training = training_sample(spec, dimension, rows, IndexSpec::sq8_training_size(rows), chunks);
        index->train(training.data(), training.size() / dimension);
    }
    return index;
}

}  // namespace

std::unique_ptr<VectorIndex> build_index(const IndexSpec& spec, int dimension, Metric metric, size_t rows,
                                         const RowChunks& chunks, VectorFetcher fetch) {
    std::unique_ptr<VectorIndex> index;
    if (spec.searches_exactly(rows)) {
        index = std::make_unique<FlatIndex>(dimension, metric);
    } else {
        std::unique_ptr<VectorIndex> inner;
        if (spec.is_hnsw())
            inner = trained_hnsw(spec, dimension, metric, rows, chunks);
        else
            inner = trained_ivf(spec, dimension, metric, rows, chunks);
        index = std::make_unique<GroupedIndex>(std::move(inner), std::move(fetch));
    }
    chunks([&](const int64_t* ids, const float* vectors, size_t count) {
        index->add_batch(ids, vectors, count, /*replace=*/false);
    });
    return index;
}

}  // namespace cbir
