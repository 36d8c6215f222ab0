#include "index/reranked_index.h"

#include <algorithm>
#include <cmath>

namespace cbir {

RerankedIndex::RerankedIndex(std::unique_ptr<VectorIndex> inner, VectorFetcher fetch, int factor)
    : inner_(std::move(inner)), fetch_(std::move(fetch)), factor_(std::max(1, factor)) {}

std::vector<Neighbor> RerankedIndex::search(const float* query, const SearchParams& params) const {
    SearchParams wide = params;
    wide.k = params.k * factor_;
    const auto shortlist = inner_->search(query, wide);
    std::vector<int64_t> ids;
    for (const auto& n : shortlist) ids.push_back(n.id);
    std::vector<float> vectors;
    fetch_(ids, vectors);
    const int d = dimension();
    std::vector<float> q(query, query + d);
    prepare_for_metric(metric(), q.data(), q.size());
    std::vector<Neighbor> out;
    for (size_t i = 0; i < ids.size(); ++i) {
        float* v = &vectors[i * d];
        if (std::isnan(v[0])) continue;
        prepare_for_metric(metric(), v, d);
        out.push_back({ids[i], distance(metric(), q.data(), v, d)});
    }
    std::sort(out.begin(), out.end(), [](const Neighbor& a, const Neighbor& b) {
        return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
    });
    if (out.size() > static_cast<size_t>(std::max(params.k, 0))) out.resize(static_cast<size_t>(params.k));
    return out;
}

}  // namespace cbir
