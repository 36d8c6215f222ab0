#include "index/flat_index.h"

#include <algorithm>

namespace cbir {

FlatIndex::FlatIndex(int dimension, Metric metric) : dimension_(dimension), metric_(metric) {}

void FlatIndex::add(int64_t id, const float* vector) {
    std::vector<float> prepared(vector, vector + dimension_);
    prepare_for_metric(metric_, prepared.data(), prepared.size());
    auto found = slot_of_id_.find(id);
    if (found != slot_of_id_.end()) {
        std::copy(prepared.begin(), prepared.end(), vectors_.begin() + static_cast<long>(found->second * dimension_));
        return;
    }
    slot_of_id_.emplace(id, ids_.size());
    ids_.push_back(id);
    vectors_.insert(vectors_.end(), prepared.begin(), prepared.end());
}

void FlatIndex::remove(const std::vector<int64_t>& ids) {
    for (int64_t id : ids) {
        auto found = slot_of_id_.find(id);
        if (found == slot_of_id_.end()) continue;
        const size_t slot = found->second, last = ids_.size() - 1;
        if (slot != last) {  // the last vector takes the freed slot
            std::copy(vectors_.begin() + static_cast<long>(last * dimension_),
                      vectors_.begin() + static_cast<long>((last + 1) * dimension_),
                      vectors_.begin() + static_cast<long>(slot * dimension_));
            ids_[slot] = ids_[last];
            slot_of_id_[ids_[slot]] = slot;
        }
        ids_.pop_back();
        vectors_.resize(ids_.size() * dimension_);
        slot_of_id_.erase(found);
    }
}

std::vector<Neighbor> FlatIndex::search(const float* query, const SearchParams& params) const {
    std::vector<float> q(query, query + dimension_);
    prepare_for_metric(metric_, q.data(), q.size());
    std::vector<Neighbor> all;
    all.reserve(ids_.size());
    for (size_t slot = 0; slot < ids_.size(); ++slot)
        all.push_back({ids_[slot], distance(metric_, q.data(), &vectors_[slot * dimension_], dimension_)});
    const size_t k = std::min(all.size(), static_cast<size_t>(std::max(params.k, 0)));
    // Ties broken by id so that exact results are deterministic.
    auto closer = [](const Neighbor& a, const Neighbor& b) {
        return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
    };
    std::partial_sort(all.begin(), all.begin() + static_cast<long>(k), all.end(), closer);
    all.resize(k);
    return all;
}

}  // namespace cbir
