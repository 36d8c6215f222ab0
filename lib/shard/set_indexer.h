#pragma once
// `cbir index … --store SET`: fills some or all shards of a store set. Each shard is indexed as an
// ordinary store that owns only the files placed in it, so a task that fills shard I (a Slurm array
// task, an MPI rank, an xargs job) needs no other task, and a re-run resumes like any index run.
#include <filesystem>
#include <vector>

#include "pipeline/indexer.h"
#include "shard/store_set.h"

namespace cbir {

struct SetIndexOptions {
    IndexOptions store;      // as for one store; store.store_dir is the set's folder
    int shards = 0;          // S for a new set; for an existing one 0 or its S
    std::vector<int> fill;   // the shards this process fills; empty = every shard
};

// The set's root when a set is made from these inputs: the deepest folder holding all of them.
std::filesystem::path common_root(const std::vector<std::filesystem::path>& inputs);

// Opens the set, or creates it (or joins the one another task is creating) when `options.shards` is
// given. Throws cbir::Error when it is neither a set nor may become one.
StoreSet open_or_create_set(const std::vector<std::filesystem::path>& inputs, const SetIndexOptions& options);

// The summary adds up the filled shards (store_count: their rows).
IndexSummary index_store_set(const std::vector<std::filesystem::path>& inputs, const SetIndexOptions& options,
                             const IndexCallbacks& callbacks);

}  // namespace cbir
