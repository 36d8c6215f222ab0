#include "store/derived_index.h"

#include <fmt/format.h>

#include "util/log.h"

namespace cbir {
namespace {

std::unique_ptr<HnswIndex> rebuild_hnsw(Store& store) {
    const auto& s = store.settings();
    auto index = std::make_unique<HnswIndex>(s.dimension, s.metric, s.hnsw, store.catalogue().count());
    store.catalogue().for_each_vector_since(0, [&](int64_t id, const float* vector, int dimension) {
        if (dimension == s.dimension) index->add(id, vector);
    });
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
        store.catalogue().for_each_vector_since(generation_before, [&](int64_t id, const float* vector, int dimension) {
            if (dimension == store.settings().dimension) index->add(id, vector);
        });
    } else {
        index = rebuild_hnsw(store);
    }
    index->save(store.index_file(), generation);
}

}  // namespace cbir
