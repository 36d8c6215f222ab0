#include "shard/set_search.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <map>

#include <fmt/format.h>

#include "cluster/communicator.h"
#include "cluster/wire_bytes.h"
#include "store/derived_index.h"
#include "store/file_identity.h"
#include "store/store.h"
#include "util/error.h"
#include "util/log.h"

namespace cbir {
namespace {

struct OpenShard {
    int shard = 0;
    std::unique_ptr<Store> store;
    std::unique_ptr<VectorIndex> index;
};

// Opens the shards and their indexes in parallel (each load is mostly reading one file).
std::vector<OpenShard> open_shards(const StoreSet& set, const std::vector<int>& shards, bool exact) {
    std::vector<std::future<OpenShard>> loading;
    for (int shard : shards)
        loading.push_back(std::async(std::launch::async, [&set, shard, exact] {
            const auto dir = set.shard_dir(shard);
            if (!Store::exists(dir))
                throw Error(fmt::format("{}: shard {} of the set has no store (its index task has not run or failed; "
                                        "run it again with --shard {})",
                                        dir.string(), shard, shard));
            OpenShard open{shard, Store::open(dir, CatalogueAccess::ReadOnly), nullptr};
            // Distances from another metric or model would be merged as if comparable.
            if (const auto why = set.shard_disagreement(open.store->settings()); !why.empty())
                throw Error(fmt::format("{}: shard {} does not belong to the set: {}", dir.string(), shard, why));
            // Its answers are right for what it holds, which may not be all its images.
            if (const std::string run = open.store->unfinished_index_run(); !run.empty())
                log_warning(fmt::format("{}: shard {}'s index run did not finish ({}); images may be missing from the "
                                        "answers: run its task again (--shard {})",
                                        dir.string(), shard, run, shard));
            open.index = exact ? build_flat_index(*open.store) : open_search_index(*open.store, IndexWriteBack::IfChanged, IndexFileHolding::Mapped);
            return open;
        }));
    std::vector<OpenShard> out;
    for (auto& f : loading) out.push_back(f.get());
    return out;
}

// Each query's hits from these shards, at most k each.
std::vector<std::vector<SetHit>> search_shards(std::vector<OpenShard>& shards,
                                                const std::vector<std::vector<float>>& vectors,
                                                const QueryOptions& options) {
    std::vector<std::vector<SetHit>> out(vectors.size());
    const SearchParams params{options.top_k, options.ef, options.nprobe};
    for (auto& open : shards) {
        if (open.index->size() == 0) continue;
        for (size_t q = 0; q < vectors.size(); ++q) {
            if (vectors[q].empty()) continue;
            if (static_cast<int>(vectors[q].size()) != open.index->dimension())
                throw Error(fmt::format("{}: query vectors have {} dimensions, the shard {}", open.store->dir().string(),
                                        vectors[q].size(), open.index->dimension()));
            for (auto& hit : find_hits(*open.index, open.store->catalogue(), vectors[q].data(), params, options.max_distance))
                out[q].push_back({hit.distance, global_id(open.shard, hit.id), std::move(hit.path)});
        }
    }
    return out;
}

// Rank 0's vectors (and which queries failed) for every rank: a status byte first, so that an error
// on rank 0 ends the other ranks too instead of leaving them waiting.
std::string encode_vectors(const std::vector<std::vector<float>>& vectors) {
    WireBytes b;
    b.put<uint8_t>(1);
    b.put<uint64_t>(vectors.size());
    for (const auto& v : vectors) {
        b.put<uint32_t>(static_cast<uint32_t>(v.size()));
        b.put_bytes(v.data(), v.size() * sizeof(float));
    }
    return std::move(b.data());
}

std::vector<std::vector<float>> decode_vectors(std::string data) {
    WireBytes b(std::move(data));
    if (b.get<uint8_t>() != 1) throw Error("rank 0 could not prepare the queries (its error is above)");
    std::vector<std::vector<float>> vectors(b.get<uint64_t>());
    for (auto& v : vectors) {
        v.resize(b.get<uint32_t>());
        b.take(v.data(), v.size() * sizeof(float));
    }
    return vectors;
}

std::string encode_hits(const std::vector<std::vector<SetHit>>& hits) {
    WireBytes b;
    b.put<uint8_t>(1);
    b.put<uint64_t>(hits.size());
    for (const auto& list : hits) {
        b.put<uint32_t>(static_cast<uint32_t>(list.size()));
        for (const auto& h : list) {
            b.put<float>(h.distance);
            b.put<int64_t>(h.id);
            b.put_string(h.path);
        }
    }
    return std::move(b.data());
}

std::string encode_error(const std::string& message) {
    WireBytes b;
    b.put<uint8_t>(0);
    b.put_string(message);
    return std::move(b.data());
}

void decode_hits_into(std::string data, int rank, std::vector<std::vector<SetHit>>& all) {
    WireBytes b(std::move(data));
    if (b.get<uint8_t>() != 1) throw Error(fmt::format("rank {}: {}", rank, b.get_string()));
    const uint64_t queries = b.get<uint64_t>();
    if (queries != all.size()) throw Error(fmt::format("rank {} answered {} queries of {}", rank, queries, all.size()));
    for (auto& list : all) {
        const uint32_t n = b.get<uint32_t>();
        for (uint32_t i = 0; i < n; ++i) {
            SetHit h;
            h.distance = b.get<float>();
            h.id = b.get<int64_t>();
            h.path = b.get_string();
            list.push_back(std::move(h));
        }
    }
}

}  // namespace

std::vector<QueryHit> merge_hits(std::vector<SetHit> hits, int k) {
    std::sort(hits.begin(), hits.end(), [](const SetHit& a, const SetHit& b) {
        return a.distance != b.distance ? a.distance < b.distance : a.id < b.id;
    });
    if (hits.size() > static_cast<size_t>(k)) hits.resize(static_cast<size_t>(k));
    std::vector<QueryHit> out;
    for (size_t r = 0; r < hits.size(); ++r) out.push_back({static_cast<int>(r + 1), hits[r].distance, hits[r].id, hits[r].path});
    return out;
}

QueryReport run_set_query(const std::vector<std::filesystem::path>& images, const QueryOptions& options,
                          Communicator* job) {
    const StoreSet set = StoreSet::open(options.store_dir);
    const int rank = job ? job->rank() : 0;
    const int ranks = job ? job->size() : 1;
    QueryReport report;
    report.metric = set.manifest().metric;
    report.index_kind = options.exact ? "flat" : index_kind_name(set.manifest().index.kind);

    // Indexes load while rank 0 embeds the queries.
    auto loading = std::async(std::launch::async, [&] { return open_shards(set, shards_of_task(set.shards(), rank, ranks), options.exact); });

    std::vector<std::vector<float>> vectors;
    std::string message;
    if (rank == 0) {
        try {
            // A query image that is indexed and unchanged takes its vector from its own shard.
            std::map<int, std::unique_ptr<Store>> opened;
            auto shard_store = [&](int shard) -> Store* {
                auto& slot = opened[shard];
                if (!slot && Store::exists(set.shard_dir(shard))) slot = Store::open(set.shard_dir(shard), CatalogueAccess::ReadOnly);
                return slot.get();
            };
            Store* model_store = nullptr;
            for (int s = 0; s < set.shards() && !model_store; ++s) model_store = shard_store(s);
            if (!model_store) throw Error(fmt::format("{}: the set has no shard yet; run 'cbir index DIR --store {}'",
                                                      set.dir().string(), set.dir().string()));
            query_vectors(*model_store,
                          [&](const std::filesystem::path& image) -> std::optional<std::vector<float>> {
                              Store* owner = shard_store(set.shard_of(catalogue_key(image)));
                              return owner ? stored_vector(*owner, image) : std::nullopt;
                          },
                          images, options, vectors, report.results);
            message = encode_vectors(vectors);
        } catch (const std::exception& e) {
            if (job) {
                std::string failed = encode_error(e.what());
                job->broadcast(failed, 0);
            }
            throw;
        }
    }
    if (job) {
        job->broadcast(message, 0);
        if (rank != 0) vectors = decode_vectors(std::move(message));
    }

    std::string mine;
    std::vector<std::vector<SetHit>> hits;
    try {
        auto shards = loading.get();
        hits = search_shards(shards, vectors, options);
        mine = encode_hits(hits);
    } catch (const std::exception& e) {
        if (!job) throw;
        mine = encode_error(e.what());
    }
    if (job) {
        const auto answers = job->gather(mine, 0);
        if (rank != 0) {
            WireBytes b(mine);
            if (b.get<uint8_t>() != 1) throw Error(b.get_string());
            return QueryReport{};
        }
        hits.assign(vectors.size(), {});
        for (int r = 0; r < ranks; ++r) decode_hits_into(answers[r], r, hits);
    }
    for (size_t q = 0; q < report.results.size(); ++q)
        if (report.results[q].error.empty()) report.results[q].hits = merge_hits(std::move(hits[q]), options.top_k);
    return report;
}

}  // namespace cbir
