#pragma once
// What `cbir info` reports about a store: settings, counts, sizes on disk, the index's state.
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace cbir {

// Ordered key/value pairs; numbers are given as text.
std::vector<std::pair<std::string, std::string>> describe_store(Store& store);

}  // namespace cbir
