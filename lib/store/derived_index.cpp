#include "store/derived_index.h"

#include <unistd.h>

#include <fmt/format.h>

#include "index/grouped_index.h"
#include "index/index_factory.h"
#include "index/reranked_index.h"
#include "util/error.h"
#include "util/log.h"

namespace cbir {
namespace {

constexpr size_t kChunk = 8192;  // rows read from the catalogue at a time: bounded memory

VectorFetcher catalogue_fetcher(Store& store) {
    Catalogue& catalogue = store.catalogue();
    const int dimension = store.settings().dimension;
    return [&catalogue, dimension](const std::vector<int64_t>& ids, std::vector<float>& vectors) {
        catalogue.vectors_of(ids, dimension, vectors);
    };
}

// The rows changed after `generation` (all rows for 0), in chunks of ids and vectors.
RowChunks rows_since(Store& store, uint64_t generation) {
    return [&store, generation](const ChunkVisitor& visit) {
        const int dimension = store.settings().dimension;
        std::vector<int64_t> ids;
        std::vector<float> vectors;
        store.catalogue().for_each_vector_since(generation, [&](int64_t id, const float* vector, int row_dimension) {
            if (row_dimension != dimension) return;
            ids.push_back(id);
            vectors.insert(vectors.end(), vector, vector + dimension);
            if (ids.size() == kChunk) {
                visit(ids.data(), vectors.data(), ids.size());
                ids.clear();
                vectors.clear();
            }
        });
        if (!ids.empty()) visit(ids.data(), vectors.data(), ids.size());
    };
}

// The store's index built anew from every catalogue vector (flat where the store searches exactly).
std::unique_ptr<VectorIndex> rebuild(Store& store) {
    const StoreSettings& s = store.settings();
    return build_index(s.index, s.dimension, s.metric, store.catalogue().count(), rows_since(store, 0),
                       catalogue_fetcher(store));
}

// Applies the catalogue's changes after `since` to a loaded index: deletions, then new and changed
// rows. False when the index should be rebuilt instead (rebuild_reason).
bool catch_up(Store& store, VectorIndex& index, uint64_t since) {
    const size_t count = store.catalogue().count();
    if (auto reason = index.rebuild_reason(count)) {
        log_debug(*reason + ": rebuilding the index");
        return false;
    }
    index.remove(store.catalogue().deleted_since(since));
    if (auto reason = index.rebuild_reason(count)) {
        log_debug(*reason + ": rebuilding the index");
        return false;
    }
    rows_since(store, since)([&](const int64_t* ids, const float* vectors, size_t count) {
        index.add_batch(ids, vectors, count, /*replace=*/true);
    });
    return true;
}

// The loaded index brought to the catalogue's generation: caught up when its file is behind, rebuilt
// when it is missing, damaged, built from another catalogue, or cannot catch up.
std::unique_ptr<VectorIndex> current_index(Store& store, std::unique_ptr<VectorIndex> loaded,
                                            const IndexFileHeader& header, uint64_t generation, bool announce_missing,
                                            bool& changed) {
    changed = true;
    const std::string file = store.index_file().string();
    if (loaded) {
        const IndexFileMatch match = match_index_file(store, header.built_from, generation);
        if (match == IndexFileMatch::Current) {
            changed = false;
            return loaded;
        }
        if (match == IndexFileMatch::Behind) {
            // Routine after every write: -v says it.
            log_debug(fmt::format("{} is stale (catalogue generation {}, the catalogue is at {}); catching up", file,
                                   header.built_from.generation, generation));
            if (catch_up(store, *loaded, header.built_from.generation)) return loaded;
        } else {
            log_notice(fmt::format("{} is not used ({}); rebuilding it", file, describe_foreign(store, header.built_from)));
        }
    } else {
        // A query finding no index file is news; an index run building its first one is not.
        log_message(announce_missing ? LogLevel::Notice : LogLevel::Debug,
                    fmt::format("building {} from the catalogue", file));
    }
    return rebuild(store);
}

// Loads the index file; returns null (after saying why) when it is missing or unusable.
std::unique_ptr<VectorIndex> try_load(Store& store, IndexFileHeader& header, IndexFileHolding holding) {
    std::error_code ec;
    if (!std::filesystem::exists(store.index_file(), ec)) return nullptr;
    const StoreSettings& s = store.settings();
    try {
        auto index = GroupedIndex::load(store.index_file(), s.index, catalogue_fetcher(store), header, holding);
        if (index->dimension() != s.dimension || index->metric() != s.metric || index->kind() != s.index.kind) {
            log_warning(fmt::format("{}: index was built for another kind, dimension or metric; rebuilding it",
                                    store.index_file().string()));
            return nullptr;
        }
        return index;
    } catch (const IndexFileError& e) {
        log_warning(fmt::format("{}; rebuilding it from the catalogue", e.what()));
        return nullptr;
    }
}

std::unique_ptr<VectorIndex> for_search(Store& store, std::unique_ptr<VectorIndex> index) {
    if (!store.settings().index.reranks() || index->kind() == IndexKind::Flat) return index;
    return std::make_unique<RerankedIndex>(std::move(index), catalogue_fetcher(store), store.settings().index.rerank_factor());
}

bool can_write_into(const std::filesystem::path& dir) { return ::access(dir.c_str(), W_OK) == 0; }

}  // namespace

CatalogueState catalogue_state(Store& store, uint64_t generation) {
    return {store.catalogue().store_id(), generation, store.catalogue().state_token(generation)};
}

IndexFileMatch match_index_file(Store& store, const CatalogueState& built_from, uint64_t generation) {
    const std::string store_id = store.catalogue().store_id();
    // A store made before identities and not written since has nothing to bind a file to: a
    // generation alone matches any other store's file of the same generation, so none is trusted
    // (searched from a rebuild in memory; the first write gives the store its identity).
    if (store_id.empty()) return IndexFileMatch::Foreign;
    if (built_from.store_id != store_id || built_from.generation > generation || built_from.token.empty() ||
        store.catalogue().state_token(built_from.generation) != built_from.token)
        return IndexFileMatch::Foreign;
    return built_from.generation == generation ? IndexFileMatch::Current : IndexFileMatch::Behind;
}

std::string describe_foreign(Store& store, const CatalogueState& built_from) {
    if (store.catalogue().store_id().empty())
        return "this store has no identity yet: it was made before identities, and any write gives it one";
    if (built_from.store_id.empty()) return "it was built before index files named their store";
    if (built_from.store_id != store.catalogue().store_id()) return "it was built from another store";
    if (built_from.generation > store.catalogue().generation())
        return fmt::format("it was built from generation {}, ahead of this catalogue's {}", built_from.generation,
                           store.catalogue().generation());
    return fmt::format("it was built from a copy of this store that has changed since (generation {} differs)",
                       built_from.generation);
}

std::unique_ptr<VectorIndex> build_flat_index(Store& store) {
    const StoreSettings& s = store.settings();
    IndexSpec flat;
    flat.kind = IndexKind::Flat;
    return build_index(flat, s.dimension, s.metric, store.catalogue().count(), rows_since(store, 0),
                       catalogue_fetcher(store));
}

std::unique_ptr<VectorIndex> open_search_index(Store& store, IndexWriteBack write_back, IndexFileHolding holding) {
    const StoreSettings& s = store.settings();
    if (s.index.searches_exactly(store.catalogue().count())) {
        if (s.index.kind != IndexKind::Flat)
            log_debug(fmt::format("{} vectors are too few for {}: searching exactly", store.catalogue().count(),
                                  s.index.describe()));
        return build_flat_index(store);
    }
    const uint64_t generation = store.catalogue().generation();
    IndexFileHeader header;
    auto loaded = try_load(store, header, holding);
    bool changed = false;
    auto index = current_index(store, std::move(loaded), header, generation, /*announce_missing=*/true, changed);
    // A read-only store still answers queries from the in-memory index.
    if (changed && write_back == IndexWriteBack::IfChanged && can_write_into(store.dir())) {
        try {
            save_index_file(*index, store, generation);
        } catch (const std::exception& e) {
            log_warning(fmt::format("could not write the updated index ({}); using it in memory", e.what()));
        }
    }
    return for_search(store, std::move(index));
}

std::unique_ptr<VectorIndex> reopen_damaged_index(Store& store, const std::string& damage, IndexWriteBack write_back) {
    log_warning(fmt::format("{}; rebuilding it from the catalogue", damage));
    std::error_code ec;
    if (can_write_into(store.dir())) std::filesystem::remove(store.index_file(), ec);
    IndexFileHeader header;
    bool changed = false;
    auto index = current_index(store, nullptr, header, store.catalogue().generation(), false, changed);
    if (write_back == IndexWriteBack::IfChanged && can_write_into(store.dir())) {
        try {
            save_index_file(*index, store, store.catalogue().generation());
        } catch (const std::exception& e) {
            log_warning(fmt::format("could not write the rebuilt index ({}); using it in memory", e.what()));
        }
    }
    return for_search(store, std::move(index));
}

void update_index_file(Store& store) {
    const StoreSettings& s = store.settings();
    const size_t count = store.catalogue().count();
    if (s.index.kind == IndexKind::Flat) return;
    if (s.index.searches_exactly(count)) {
        log_notice(fmt::format("{} vectors are fewer than the {} an IVF index trains on; searching exactly until "
                               "there are more (the index is trained then)",
                               count, kIvfMinimumVectors));
        std::error_code ec;
        std::filesystem::remove(store.index_file(), ec);
        return;
    }
    const uint64_t generation = store.catalogue().generation();
    IndexFileHeader header;
    auto loaded = try_load(store, header, IndexFileHolding::Mapped);  // loaded, caught up, written: gone at once
    bool changed = false;
    auto index = current_index(store, std::move(loaded), header, generation, /*announce_missing=*/false, changed);
    if (changed) save_index_file(*index, store, generation);
}

void refresh_index_file(Store& store) {
    try {
        update_index_file(store);
    } catch (const std::exception& e) {
        log_warning(fmt::format("the catalogue is committed, but the index file could not be updated ({}); the next "
                                "query catches it up",
                                e.what()));
    }
}

void save_index_file(const VectorIndex& index, Store& store, uint64_t generation) {
    if (index.kind() == IndexKind::Flat) return;
    index.save(store.index_file(), catalogue_state(store, generation));
}

void reindex_store(Store& store, const WriterLock&, const IndexSpec& spec) {
    StoreSettings settings = store.settings();
    const std::filesystem::path old_file = store.index_file();
    settings.index = spec;
    // The search defaults are the store's, whatever the kind.
    settings.index.hnsw_ef_search = store.settings().index.hnsw_ef_search;
    settings.index.ivf_nprobe = store.settings().index.ivf_nprobe;
    store.update_index_settings(settings);
    std::error_code ec;
    std::filesystem::remove(old_file, ec);
    std::filesystem::remove(store.index_file(), ec);
    update_index_file(store);
}

}  // namespace cbir
