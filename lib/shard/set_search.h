#pragma once
// `cbir query … --store SET`: every shard searched for the k nearest, the hits merged by (distance,
// global id), as one store holding the same images would rank them (with --exact, identically).
// Alone, one process searches every shard. In an MPI job, rank 0 reads and embeds the queries and
// broadcasts their vectors (all queries in one broadcast), every rank searches the shards it owns
// (rank r: r, r+R, …) and rank 0 gathers and merges.
#include <filesystem>
#include <vector>

#include "search/searcher.h"
#include "shard/store_set.h"

namespace cbir {

class Communicator;

// A hit from one shard, its id global (shard << 48 | row).
struct SetHit {
    float distance;
    int64_t id;
    std::string path;
};

// The k best of every shard's hits by (distance, global id): the order one store's exact search
// gives its rows. The one merge of `cbir query` and `cbir serve` on a set.
std::vector<QueryHit> merge_hits(std::vector<SetHit> hits, int k);

// The report on rank 0 (or alone); other ranks return an empty report once their part is done.
// Throws cbir::Error on every rank when the set, a shard or the model cannot be used.
QueryReport run_set_query(const std::vector<std::filesystem::path>& images, const QueryOptions& options,
                          Communicator* job);

}  // namespace cbir
