#include "store/derived_index.h"

#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "util/log.h"

namespace cbir {
namespace {

// Adds the catalogue rows changed after `generation` to the index, on all cores: rows are read in
// chunks (bounded memory) and each chunk is inserted by several threads (hnswlib locks per node).
void add_rows_since(Store& store, uint64_t generation, HnswIndex& index) {
    const int dimension = store.settings().dimension;
    constexpr size_t kChunk = 8192;
    std::vector<int64_t> ids;
    std::vector<float> vectors;
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    auto flush = [&] {
        std::atomic<size_t> next{0};
        std::vector<std::thread> workers;
        for (unsigned t = 0; t < threads; ++t)
            workers.emplace_back([&] {
                for (size_t i; (i = next.fetch_add(1)) < ids.size();) index.add(ids[i], &vectors[i * dimension]);
            });
        for (auto& w : workers) w.join();
        ids.clear();
        vectors.clear();
    };
    index.reserve(index.size() + store.catalogue().count());
    store.catalogue().for_each_vector_since(generation, [&](int64_t id, const float* vector, int row_dimension) {
        if (row_dimension != dimension) return;
        ids.push_back(id);
        vectors.insert(vectors.end(), vector, vector + dimension);
        if (ids.size() == kChunk) flush();
    });
    flush();
}

std::unique_ptr<HnswIndex> rebuild_hnsw(Store& store) {
    const auto& s = store.settings();
    auto index = std::make_unique<HnswIndex>(s.dimension, s.metric, s.hnsw, store.catalogue().count());
    add_rows_since(store, 0, *index);
    return index;
}

// Loads the HNSW file; returns null (after saying why) when it is missing or unusable.
std::unique_ptr<HnswIndex> try_load_hnsw(Store& store, int ef_search, IndexFileHeader& header) {
    std::error_code ec;
    if (!std::filesystem::exists(store.index_file(), ec)) return nullptr;
    try {
        auto index = HnswIndex::load(store.index_file(), ef_search, header);
        const auto& s = store.settings();
        if (index->dimension() != s.dimension || index->metric() != s.metric) {
            log_warning(fmt::format("{}: index was built for another dimension or metric; rebuilding it",
                                    store.index_file().string()));
            return nullptr;
        }
        return index;
    } catch (const IndexFileError& e) {
        log_warning(fmt::format("{}; rebuilding it from the catalogue", e.what()));
        return nullptr;
    }
}

void save_quietly_on_failure(const HnswIndex& index, Store& store, uint64_t generation) {
    try {
        index.save(store.index_file(), generation);
    } catch (const std::exception& e) {
        // A read-only store still answers queries from the rebuilt in-memory index.
        log_warning(fmt::format("could not write the rebuilt index ({}); using it in memory", e.what()));
    }
}

}  // namespace

std::unique_ptr<FlatIndex> build_flat_index(Store& store) {
    const auto& s = store.settings();
    auto index = std::make_unique<FlatIndex>(s.dimension, s.metric);
    store.catalogue().for_each_vector_since(0, [&](int64_t id, const float* vector, int dimension) {
        if (dimension == s.dimension) index->add(id, vector);
    });
    return index;
}

std::unique_ptr<VectorIndex> open_search_index(Store& store, int ef_search, bool save) {
    if (store.settings().index_kind == "flat") return build_flat_index(store);
    const uint64_t generation = store.catalogue().generation();
    IndexFileHeader header;
    auto index = try_load_hnsw(store, ef_search, header);
    if (index && header.catalogue_generation == generation) return index;
    if (index)
        log_notice(fmt::format("{} is stale (built from catalogue generation {}, catalogue is at {}); rebuilding it",
                               store.index_file().string(), header.catalogue_generation, generation));
    else
        log_notice(fmt::format("building {} from the catalogue", store.index_file().string()));
    index = rebuild_hnsw(store);
    if (save) save_quietly_on_failure(*index, store, generation);
    return index;
}

void update_index_file(Store& store, uint64_t generation_before) {
    if (store.settings().index_kind == "flat") return;
    const uint64_t generation = store.catalogue().generation();
    IndexFileHeader header;
    auto index = try_load_hnsw(store, store.settings().hnsw.ef_search, header);
    if (index && header.catalogue_generation == generation) return;
    if (index && header.catalogue_generation == generation_before) {
        add_rows_since(store, generation_before, *index);
    } else {
        index = rebuild_hnsw(store);
    }
    index->save(store.index_file(), generation);
}

}  // namespace cbir
