#include "search/searcher.h"

#include <chrono>
#include <future>

#include <fmt/format.h>

#include "embed/embedder.h"
#include "pipeline/model_resolution.h"
#include "pipeline/prepare.h"
#include "store/derived_index.h"
#include "store/store.h"
#include "util/file_stat.h"
#include "util/log.h"

namespace cbir {
namespace {

// The stored vector of an indexed, unchanged file: it needs no model at all, and the image is its
// own first hit at distance exactly 0.
std::optional<std::vector<float>> stored_vector(Store& store, const std::filesystem::path& image) {
    auto record = store.catalogue().find_by_path(std::filesystem::absolute(image).lexically_normal().string());
    if (!record) return std::nullopt;
    auto st = stat_file(image);
    if (!st || st->size != record->size || st->mtime_ns != record->mtime_ns) return std::nullopt;
    return record->vector;
}

}  // namespace

QueryReport run_query(const std::vector<std::filesystem::path>& images, const QueryOptions& options) {
    const auto started = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
    auto store = Store::open(options.store_dir);
    log_debug(fmt::format("store opened at {:.3f} s", elapsed()));
    const StoreSettings& settings = store->settings();
    QueryReport report;
    report.metric = settings.metric;

    // The index loads (or is rebuilt) in the background while query images are embedded: the two
    // costs overlap instead of adding up.
    std::future<std::unique_ptr<VectorIndex>> index_loading = std::async(std::launch::async, [&]() -> std::unique_ptr<VectorIndex> {
        if (options.exact) return build_flat_index(*store);
        return open_search_index(*store, settings.hnsw.ef_search, /*save=*/true);
    });

    // A model is loaded at most once, and only if some query is not in the store.
    std::vector<std::vector<float>> vectors(images.size());
    std::vector<QueryResult> results(images.size());
    std::unique_ptr<Embedder> embedder;
    const PreprocessSpec spec;
    for (size_t i = 0; i < images.size(); ++i) {
        results[i].query = images[i];
        if (auto v = stored_vector(*store, images[i])) {
            vectors[i] = std::move(*v);
            continue;
        }
        PreparedImage prepared = prepare_image(images[i], spec);
        if (!prepared.ok()) {
            results[i].error = prepared.error;
            continue;
        }
        if (!embedder) {
            ModelFile model = model_for_existing_store(*store, options.model);
            warn_if_untrained(model);
            EmbedderOptions embedder_options;
            embedder_options.threads = options.threads;
            // A query embeds a handful of images: optimising and warming up would cost more than
            // they save (measured: optimize 0.11 s + warm-up 0.07 s against ~0.1 s for one plain pass).
            embedder_options.optimize = images.size() > 16;
            embedder_options.warm_up = false;
            embedder_options.precision = options.precision;
            embedder = Embedder::load(model.path, embedder_options);
            const auto& t = embedder->load_times();
            log_debug(fmt::format("model ready at {:.3f} s (load {:.3f}, optimize {:.3f}, warm-up {:.3f})", elapsed(),
                                  t.load_seconds, t.optimize_seconds, t.warm_up_seconds));
        }
        vectors[i] = embedder->embed(prepared.input.data(), 1);
    }

    std::unique_ptr<VectorIndex> index = index_loading.get();
    report.index_kind = index->kind();
    log_debug(fmt::format("{} index of {} vectors ready at {:.3f} s", index->kind(), index->size(), elapsed()));

    SearchParams params;
    params.k = options.top_k;
    params.ef = options.ef;
    for (size_t i = 0; i < images.size(); ++i) {
        if (!results[i].error.empty()) continue;
        const auto neighbors = index->search(vectors[i].data(), params);
        std::vector<int64_t> ids;
        for (const auto& n : neighbors) ids.push_back(n.id);
        const auto paths = store->catalogue().paths_of(ids);
        for (size_t r = 0; r < neighbors.size(); ++r)
            results[i].hits.push_back({static_cast<int>(r + 1), neighbors[r].distance, paths[r]});
    }
    log_debug(fmt::format("searched at {:.3f} s", elapsed()));
    report.results = std::move(results);
    return report;
}

}  // namespace cbir
