#include "store/derived_index.h"

#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "index/ivf_index.h"
#include "index/reranked_index.h"
#include "util/error.h"
#include "util/log.h"

namespace cbir {
namespace {

constexpr size_t kChunk = 8192;  // rows read from the catalogue at a time: bounded memory
constexpr size_t kRetrainGrowth = 10;
constexpr double kMaxTombstoneShare = 0.1;  // HNSW is rebuilt (compacted) past 10 % deleted nodes

bool is_ivf(const std::string& kind) { return kind == "ivf" || kind == "ivfpq"; }

// Visits the rows changed after `generation` in chunks of ids and vectors.
void for_each_chunk_since(Store& store, uint64_t generation,
                          const std::function<void(const std::vector<int64_t>&, const std::vector<float>&)>& visit) {
    const int dimension = store.settings().dimension;
    std::vector<int64_t> ids;
    std::vector<float> vectors;
    store.catalogue().for_each_vector_since(generation, [&](int64_t id, const float* vector, int row_dimension) {
        if (row_dimension != dimension) return;
        ids.push_back(id);
        vectors.insert(vectors.end(), vector, vector + dimension);
        if (ids.size() == kChunk) {
            visit(ids, vectors);
            ids.clear();
            vectors.clear();
        }
    });
    if (!ids.empty()) visit(ids, vectors);
}

// HNSW inserts on all cores (hnswlib locks per node).
void add_to_hnsw(HnswIndex& index, const std::vector<int64_t>& ids, const std::vector<float>& vectors, int dimension) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> workers;
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned t = 0; t < threads; ++t)
        workers.emplace_back([&] {
            for (size_t i; (i = next.fetch_add(1)) < ids.size();) index.add(ids[i], &vectors[i * dimension]);
        });
    for (auto& w : workers) w.join();
}

void add_rows_since(Store& store, uint64_t generation, VectorIndex& index, bool replace) {
    const int dimension = store.settings().dimension;
    if (auto* hnsw = dynamic_cast<HnswIndex*>(&index)) {
        hnsw->reserve(hnsw->size() + hnsw->tombstones() + store.catalogue().count());
        for_each_chunk_since(store, generation, [&](const auto& ids, const auto& vectors) {
            add_to_hnsw(*hnsw, ids, vectors, dimension);
        });
    } else if (auto* ivf = dynamic_cast<IvfIndex*>(&index)) {
        for_each_chunk_since(store, generation, [&](const auto& ids, const auto& vectors) {
            ivf->add_batch(ids.data(), vectors.data(), ids.size(), replace);
        });
    }
}

// k-means needs a sample, not the collection: 64 points per list (FAISS wants at least 39), and for
// PQ at least 64 per code of each sub-quantizer, taken at an even stride through the catalogue.
std::unique_ptr<IvfIndex> train_ivf(Store& store, size_t count) {
    const StoreSettings& s = store.settings();
    IndexSpec spec = s.index_spec();
    if (spec.ivf_nlist <= 0) spec.ivf_nlist = choose_ivf_nlist(count);
    if (count < static_cast<size_t>(spec.ivf_nlist) * 39)
        log_warning(fmt::format("{} vectors give fewer than 39 per list for {} (poor centroids)", count, spec.describe()));
    size_t wanted = static_cast<size_t>(spec.ivf_nlist) * 64;
    if (spec.kind == "ivfpq") wanted = std::max(wanted, (size_t(1) << spec.pq_bits) * 64);
    const size_t sample = std::min(count, wanted);
    const size_t stride = std::max<size_t>(1, count / sample);
    std::vector<float> training;
    size_t row = 0, taken = 0;
    store.catalogue().for_each_vector_since(0, [&](int64_t, const float* v, int d) {
        if (d == s.dimension && row++ % stride == 0 && taken < sample) {
            training.insert(training.end(), v, v + d);
            ++taken;
        }
    });
    log_notice(fmt::format("training {} on {} of {} vectors", spec.describe(), taken, count));
    auto index = std::make_unique<IvfIndex>(s.dimension, s.metric, spec);
    index->train(training.data(), taken);
    return index;
}

// A fresh index of the store's kind with every catalogue vector; null for flat stores and for IVF
// stores too small to train (the caller searches exactly then).
std::unique_ptr<VectorIndex> rebuild(Store& store) {
    const StoreSettings& s = store.settings();
    const size_t count = store.catalogue().count();
    std::unique_ptr<VectorIndex> index;
    if (s.index_kind == "hnsw") {
        index = std::make_unique<HnswIndex>(s.dimension, s.metric, s.hnsw, count);
    } else if (is_ivf(s.index_kind)) {
        if (count < kIvfMinimumVectors) return nullptr;
        index = train_ivf(store, count);
    } else {
        return nullptr;
    }
    add_rows_since(store, 0, *index, /*replace=*/false);
    return index;
}

// Applies the catalogue's changes after `since` to a loaded index: deletions, then new and changed
// rows. False when the index should be rebuilt instead (an IVF index outgrown its training, an HNSW
// graph with too many tombstones).
bool catch_up(Store& store, VectorIndex& index, uint64_t since) {
    const size_t count = store.catalogue().count();
    if (auto* ivf = dynamic_cast<IvfIndex*>(&index); ivf && count > kRetrainGrowth * std::max<size_t>(ivf->trained_on(), 1)) {
        log_notice(fmt::format("{} vectors are more than {}x the {} the IVF index was trained on: retraining", count,
                               kRetrainGrowth, ivf->trained_on()));
        return false;
    }
    index.remove(store.catalogue().deleted_since(since));
    if (auto* hnsw = dynamic_cast<HnswIndex*>(&index);
        hnsw && hnsw->tombstones() > kMaxTombstoneShare * double(hnsw->size() + hnsw->tombstones())) {
        log_notice(fmt::format("{} deleted images are more than 10% of the HNSW graph: rebuilding it", hnsw->tombstones()));
        return false;
    }
    add_rows_since(store, since, index, /*replace=*/true);
    return true;
}

// The loaded index brought to the catalogue's generation: caught up when its file is behind, rebuilt
// when it is missing, damaged, from a later generation (another catalogue) or cannot catch up.
std::unique_ptr<VectorIndex> current_index(Store& store, std::unique_ptr<VectorIndex> loaded, uint64_t file_generation,
                                           uint64_t generation, bool announce_missing, bool& changed) {
    changed = true;
    if (loaded && file_generation == generation) {
        changed = false;
        return loaded;
    }
    if (loaded && file_generation < generation) {
        log_notice(fmt::format("{} is stale (catalogue generation {}, the catalogue is at {}); catching up",
                              store.index_file().string(), file_generation, generation));
        if (catch_up(store, *loaded, file_generation)) return loaded;
    } else if (loaded) {
        log_notice(fmt::format("{} was built from another catalogue (generation {} > {}); rebuilding it",
                               store.index_file().string(), file_generation, generation));
    } else {
        // A query finding no index file is news; an index run building its first one is not.
        log_message(announce_missing ? LogLevel::Notice : LogLevel::Debug,
                    fmt::format("building {} from the catalogue", store.index_file().string()));
    }
    return rebuild(store);
}

// Loads the index file; returns null (after saying why) when it is missing or unusable.
std::unique_ptr<VectorIndex> try_load(Store& store, IndexFileHeader& header) {
    std::error_code ec;
    if (!std::filesystem::exists(store.index_file(), ec)) return nullptr;
    const StoreSettings& s = store.settings();
    try {
        std::unique_ptr<VectorIndex> index;
        if (s.index_kind == "hnsw")
            index = HnswIndex::load(store.index_file(), s.hnsw.ef_search, header);
        else
            index = IvfIndex::load(store.index_file(), header);
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

std::unique_ptr<VectorIndex> for_search(Store& store, std::unique_ptr<VectorIndex> index) {
    if (store.settings().index_kind != "ivfpq") return index;
    const int dimension = store.settings().dimension;
    Catalogue& catalogue = store.catalogue();
    return std::make_unique<RerankedIndex>(std::move(index), [&catalogue, dimension](const auto& ids, auto& vectors) {
        catalogue.vectors_of(ids, dimension, vectors);
    });
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

std::unique_ptr<VectorIndex> open_search_index(Store& store, bool save_changed) {
    const StoreSettings& s = store.settings();
    if (s.index_kind == "flat") return build_flat_index(store);
    if (is_ivf(s.index_kind) && store.catalogue().count() < kIvfMinimumVectors) {
        log_debug(fmt::format("{} vectors are too few for {}: searching exactly", store.catalogue().count(),
                              s.index_spec().describe()));
        return build_flat_index(store);
    }
    const uint64_t generation = store.catalogue().generation();
    IndexFileHeader header;
    auto loaded = try_load(store, header);
    bool changed = false;
    auto index = current_index(store, std::move(loaded), header.catalogue_generation, generation,
                               /*announce_missing=*/true, changed);
    if (changed && save_changed) {
        try {
            save_index_file(*index, store, generation);
        } catch (const std::exception& e) {
            // A read-only store still answers queries from the in-memory index.
            log_warning(fmt::format("could not write the updated index ({}); using it in memory", e.what()));
        }
    }
    return for_search(store, std::move(index));
}

void update_index_file(Store& store) {
    const StoreSettings& s = store.settings();
    if (s.index_kind == "flat") return;
    const size_t count = store.catalogue().count();
    if (is_ivf(s.index_kind) && count < kIvfMinimumVectors) {
        log_notice(fmt::format("{} vectors are fewer than the {} an IVF index trains on; searching exactly until "
                               "there are more (the index is trained then)",
                               count, kIvfMinimumVectors));
        std::error_code ec;
        std::filesystem::remove(store.index_file(), ec);
        return;
    }
    const uint64_t generation = store.catalogue().generation();
    IndexFileHeader header;
    auto loaded = try_load(store, header);
    bool changed = false;
    auto index = current_index(store, std::move(loaded), header.catalogue_generation, generation,
                               /*announce_missing=*/false, changed);
    if (changed) save_index_file(*index, store, generation);
}

void save_index_file(const VectorIndex& index, Store& store, uint64_t generation) {
    const VectorIndex* stored = &index;
    if (auto* reranked = dynamic_cast<const RerankedIndex*>(stored)) stored = &reranked->inner();
    if (auto* hnsw = dynamic_cast<const HnswIndex*>(stored)) hnsw->save(store.index_file(), generation);
    if (auto* ivf = dynamic_cast<const IvfIndex*>(stored)) ivf->save(store.index_file(), generation);
}

void reindex_store(Store& store, const IndexSpec& spec) {
    StoreSettings settings = store.settings();
    const std::filesystem::path old_file = store.index_file();
    settings.set_index_spec(spec);
    store.update_index_settings(settings);
    std::error_code ec;
    std::filesystem::remove(old_file, ec);
    std::filesystem::remove(store.index_file(), ec);
    update_index_file(store);
}

}  // namespace cbir
