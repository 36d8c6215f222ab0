#include "search/duplicates.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <unordered_map>

#include "store/derived_index.h"

namespace cbir {
namespace {

struct DisjointSets {
    std::vector<size_t> parent;
    explicit DisjointSets(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
    size_t find(size_t x) {
        while (parent[x] != x) x = parent[x] = parent[parent[x]];
        return x;
    }
    void join(size_t a, size_t b) {
        a = find(a);
        b = find(b);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);
    }
};

}  // namespace

std::vector<std::vector<DuplicateMember>> find_duplicate_groups(Store& store, const DuplicateOptions& options) {
    const int dimension = store.settings().dimension;
    std::vector<int64_t> ids;
    std::vector<float> vectors;
    store.catalogue().all_vectors(dimension, ids, vectors);
    std::unordered_map<int64_t, size_t> slot;
    for (size_t i = 0; i < ids.size(); ++i) slot[ids[i]] = i;
    auto index = open_search_index(store, IndexWriteBack::IfChanged, IndexFileHolding::Mapped);
    DisjointSets sets(ids.size());
    SearchParams params;
    params.k = options.candidates + 1;  // the image itself comes back too
    for (size_t i = 0; i < ids.size(); ++i) {
        for (const auto& n : index->search(&vectors[i * dimension], params)) {
            auto j = slot.find(n.id);
            if (j == slot.end() || j->second == i) continue;
            if (cosine_similarity(&vectors[i * dimension], &vectors[j->second * dimension], dimension) >= options.min_similarity)
                sets.join(i, j->second);
        }
    }
    std::map<size_t, std::vector<size_t>> members;
    for (size_t i = 0; i < ids.size(); ++i) members[sets.find(i)].push_back(i);
    std::vector<std::vector<DuplicateMember>> groups;
    for (const auto& [root, group] : members) {
        if (group.size() < 2) continue;
        std::vector<int64_t> group_ids;
        for (size_t i : group) group_ids.push_back(ids[i]);
        const auto paths = store.catalogue().paths_of(group_ids);
        std::vector<DuplicateMember> out;
        for (size_t g = 0; g < group.size(); ++g)
            out.push_back({ids[group[g]], paths[g],
                           cosine_similarity(&vectors[group[0] * dimension], &vectors[group[g] * dimension], dimension)});
        groups.push_back(std::move(out));
    }
    std::stable_sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    return groups;
}

}  // namespace cbir
