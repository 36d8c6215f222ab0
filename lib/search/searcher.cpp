#include "search/searcher.h"

#include <chrono>
#include <algorithm>
#include <future>

#include <fmt/format.h>

#include "embed/embedder.h"
#include "index/index_file.h"
#include "pipeline/model_resolution.h"
#include "pipeline/precision_choice.h"
#include "pipeline/embedding_pipeline.h"
#include "store/file_identity.h"
#include "store/derived_index.h"
#include "store/store_info.h"
#include "store/store.h"
#include "util/error.h"
#include "util/file_stat.h"
#include "util/log.h"

namespace cbir {

std::optional<ImageRecord> current_record(Store& store, const std::filesystem::path& image) {
    auto record = store.catalogue().find_by_path(catalogue_key(image));
    if (!record) return std::nullopt;
    auto st = stat_file(image);
    if (!st || !row_is_current(*st, record->size, record->mtime_ns)) return std::nullopt;
    return record;
}

std::optional<std::vector<float>> stored_vector(Store& store, const std::filesystem::path& image) {
    auto record = current_record(store, image);
    if (!record) return std::nullopt;
    return std::move(record->vector);
}

std::vector<QueryHit> find_hits(const VectorIndex& index, const Catalogue& catalogue, const float* query,
                                const SearchParams& params, std::optional<float> max_distance) {
    auto neighbors = index.search(query, params);
    for (auto& n : neighbors) n.distance = reported_distance(index.metric(), n.distance);
    if (max_distance)
        neighbors.erase(std::remove_if(neighbors.begin(), neighbors.end(),
                                       [&](const Neighbor& n) { return n.distance > *max_distance; }),
                        neighbors.end());
    std::vector<int64_t> ids;
    for (const auto& n : neighbors) ids.push_back(n.id);
    const auto paths = catalogue.paths_of(ids);
    std::vector<QueryHit> hits;
    for (size_t r = 0; r < neighbors.size(); ++r)
        hits.push_back({static_cast<int>(r + 1), neighbors[r].distance, neighbors[r].id, paths[r]});
    return hits;
}

namespace {

// Embeds `images` with the store's model, one load for all, in batches by the same pipeline as
// `index`; each vector (or error) lands in its slot.
void embed_queries(Store& store, const std::vector<std::filesystem::path>& images, const std::vector<size_t>& slots,
                   const QueryOptions& options, std::vector<std::vector<float>>& vectors,
                   std::vector<QueryResult>& results) {
    ModelFile model = model_for_existing_store(store, options.model);
    warn_if_untrained(model);
    EmbedderOptions embedder_options;
    embedder_options.threads = options.threads;
    // A few queries do not repay optimising and warming up the model (measured: optimize 0.11 s +
    // warm-up 0.07 s against ~0.05 s for one plain pass); many do.
    embedder_options.optimize = images.size() > kOneShotQueries;
    embedder_options.warm_up = embedder_options.optimize;
    auto embedder = load_embedder(model.path, embedder_options, options.precision, &store);
    PipelineOptions pipeline;
    pipeline.batch = options.batch;
    PipelineCallbacks callbacks;
    callbacks.on_failure = [&](size_t i, const std::string& reason) { results[slots[i]].error = reason; };
    callbacks.on_batch = [&](const std::vector<size_t>& indices, const std::vector<PreparedImage>&,
                             const std::vector<float>& batch_vectors, int dimension) {
        for (size_t b = 0; b < indices.size(); ++b)
            vectors[slots[indices[b]]].assign(batch_vectors.begin() + static_cast<long>(b) * dimension,
                                              batch_vectors.begin() + static_cast<long>(b + 1) * dimension);
    };
    run_embedding_pipeline(images, *embedder, preprocessing_for_store(store, options.fast_decode), pipeline, callbacks);
}

}  // namespace

void query_vectors(Store& model_store,
                   const std::function<std::optional<std::vector<float>>(const std::filesystem::path&)>& stored,
                   const std::vector<std::filesystem::path>& images, const QueryOptions& options,
                   std::vector<std::vector<float>>& vectors, std::vector<QueryResult>& results) {
    results.assign(images.size(), QueryResult{});
    vectors.assign(images.size(), {});
    std::vector<std::filesystem::path> to_embed;
    std::vector<size_t> embed_slot;
    for (size_t i = 0; i < images.size(); ++i) {
        results[i].query = images[i];
        if (auto v = stored(images[i])) {
            vectors[i] = std::move(*v);
        } else {
            to_embed.push_back(images[i]);
            embed_slot.push_back(i);
        }
    }
    if (!to_embed.empty()) embed_queries(model_store, to_embed, embed_slot, options, vectors, results);
}

namespace {

void require_dimension(const Store& store, const VectorIndex& index, const std::vector<std::vector<float>>& vectors) {
    if (index.size() == 0) return;
    for (const auto& v : vectors)
        if (!v.empty() && static_cast<int>(v.size()) != index.dimension())
            throw Error(fmt::format("{}: query vectors have {} dimensions, the store {}", store.dir().string(), v.size(),
                                    index.dimension()));
}

}  // namespace

QueryReport run_query(const std::vector<std::filesystem::path>& images, const QueryOptions& options) {
    const auto started = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
    auto store = Store::open(options.store_dir, CatalogueAccess::ReadOnly);
    log_debug(fmt::format("store opened at {:.3f} s", elapsed()));
    if (const std::string unfinished = unfinished_index_run_notice(*store); !unfinished.empty()) log_warning(unfinished);
    preprocessing_for_store(*store, options.fast_decode);  // refused before anything is embedded or searched
    QueryReport report;
    report.metric = store->settings().metric;

    // The index loads (or is rebuilt) in the background while query images are embedded: the two
    // costs overlap instead of adding up.
    std::future<std::unique_ptr<VectorIndex>> index_loading = std::async(std::launch::async, [&]() -> std::unique_ptr<VectorIndex> {
        if (options.exact) return build_flat_index(*store);
        return open_search_index(*store, IndexWriteBack::IfChanged, IndexFileHolding::Mapped);
    });

    std::vector<QueryResult> results;
    std::vector<std::vector<float>> vectors;
    query_vectors(*store, [&](const std::filesystem::path& image) { return stored_vector(*store, image); }, images,
                  options, vectors, results);
    log_debug(fmt::format("query vectors ready at {:.3f} s", elapsed()));

    std::unique_ptr<VectorIndex> index = index_loading.get();
    report.index_kind = index_kind_name(index->kind());
    log_debug(fmt::format("{} index of {} vectors ready at {:.3f} s", report.index_kind, index->size(), elapsed()));
    require_dimension(*store, *index, vectors);
    const SearchParams params{options.top_k, options.ef, options.nprobe};  // 0: the store's defaults
    for (size_t i = 0; i < images.size(); ++i) {
        if (!results[i].error.empty() || vectors[i].empty()) continue;
        try {
            results[i].hits = find_hits(*index, store->catalogue(), vectors[i].data(), params, options.max_distance);
        } catch (const IndexFileError& e) {  // damage found where this search read the file: rebuilt, searched again
            index = reopen_damaged_index(*store, e.what(), IndexWriteBack::IfChanged);
            results[i].hits = find_hits(*index, store->catalogue(), vectors[i].data(), params, options.max_distance);
        }
    }
    log_debug(fmt::format("searched at {:.3f} s", elapsed()));
    report.results = std::move(results);
    return report;
}

}  // namespace cbir
