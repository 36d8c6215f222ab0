#pragma once
// Near-duplicate groups within a store: each image's nearest neighbours from the store's index are
// the candidates, their cosine similarity (on the raw vectors, whatever the store's metric) decides,
// and linked pairs merge into groups (union-find).
#include <cstdint>
#include <string>
#include <vector>

#include "store/store.h"

namespace cbir {

struct DuplicateMember {
    int64_t id;
    std::string path;
    double similarity;  // to the group's first member
};

struct DuplicateOptions {
    double min_similarity = 0.99;
    int candidates = 10;  // neighbours examined per image
};

// Groups of two or more, largest first; members in catalogue order.
std::vector<std::vector<DuplicateMember>> find_duplicate_groups(Store& store, const DuplicateOptions& options);

}  // namespace cbir
