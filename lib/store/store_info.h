#pragma once
// What `cbir info` reports about a store: settings, counts, sizes on disk, the index's state.
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace cbir {

// Ordered key/value pairs; numbers are given as text.
std::vector<std::pair<std::string, std::string>> describe_store(Store& store);

// When an index run into this store has not finished (killed, interrupted, or running now): what
// that means for its answers and how to finish it, in one line; empty otherwise. Queries warn with
// it, check notes it (a set's check fails on it: its completeness is the set's own, store_set.h).
std::string unfinished_index_run_notice(Store& store);

}  // namespace cbir
