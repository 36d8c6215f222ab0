#include "pipeline/indexer.h"

#include <chrono>

#include <fmt/format.h>

#include "embed/embedder.h"
#include "pipeline/model_resolution.h"
#include "pipeline/embedding_pipeline.h"
#include "pipeline/walk.h"
#include "store/derived_index.h"
#include "store/store.h"
#include "util/error.h"
#include "util/file_stat.h"

namespace cbir {
namespace {

struct Candidate {
    std::filesystem::path path;      // as the walk found it, for messages
    std::string catalogue_path;      // absolute, normalised: the catalogue key
    bool known = false;              // already in the catalogue (so this is an update)
};

std::string catalogue_key(const std::filesystem::path& p) {
    return std::filesystem::absolute(p).lexically_normal().string();
}

void check_requested_settings(const Store& store, const IndexOptions& options) {
    const auto& s = store.settings();
    if (options.metric && *options.metric != s.metric)
        throw Error(fmt::format("{}: the store uses metric '{}'; it cannot be changed to '{}' (use a new --store)",
                                store.dir().string(), metric_name(s.metric), metric_name(*options.metric)));
    if (options.index && options.index->describe() != s.index_spec().describe())
        throw Error(fmt::format("{}: the store uses index {}; change it with 'cbir reindex --index {}' (no re-embedding)",
                                store.dir().string(), s.index_spec().describe(), options.index->describe()));
}

// The files that are new or changed (size or mtime differ from the catalogue row).
std::vector<Candidate> select_changed(const std::vector<std::filesystem::path>& files, Store* store,
                                      IndexSummary& summary) {
    std::unordered_map<std::string, FileState> known;
    if (store) known = store->catalogue().file_states();
    std::vector<Candidate> out;
    for (const auto& file : files) {
        ++summary.considered;
        Candidate c{file, catalogue_key(file), false};
        auto row = known.find(c.catalogue_path);
        if (row != known.end()) {
            auto st = stat_file(file);
            if (st && st->size == row->second.size && st->mtime_ns == row->second.mtime_ns) {
                ++summary.unchanged;
                continue;
            }
            c.known = true;
        }
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace

IndexSummary run_index(const std::vector<std::filesystem::path>& inputs, const IndexOptions& options,
                       const IndexCallbacks& callbacks) {
    const auto started = std::chrono::steady_clock::now();
    IndexSummary summary;
    auto fail = [&](const std::filesystem::path& path, const std::string& reason) {
        ++summary.failed;
        if (callbacks.on_failure) callbacks.on_failure(path, reason);
    };

    std::unique_ptr<Store> store;
    if (Store::exists(options.store_dir)) {
        store = Store::open(options.store_dir);
        check_requested_settings(*store, options);
    }

    const auto files = collect_image_files(inputs, [&](const WalkProblem& p) { fail(p.path, p.reason); });
    std::vector<Candidate> todo = select_changed(files, store.get(), summary);

    if (!todo.empty()) {
        // The model is loaded only when there is something to embed: a re-run over an unchanged
        // folder costs a walk and a few stats.
        ModelFile model = store ? model_for_existing_store(*store, options.model)
                                : model_for_new_store(options.model, options.executable_dir);
        warn_if_untrained(model);
        EmbedderOptions embedder_options;
        embedder_options.threads = options.threads;
        embedder_options.precision = options.precision;
        auto embedder = Embedder::load(model.path, embedder_options);
        const PreprocessSpec spec;

        if (!store) {
            StoreSettings settings;
            settings.model_path = model.path.string();
            settings.model_sha256 = model.sha256;
            if (auto st = stat_file(model.path)) {
                settings.model_size = st->size;
                settings.model_mtime_ns = st->mtime_ns;
            }
            settings.dimension = embedder->dimension();
            settings.metric = options.metric.value_or(Metric::L2);
            settings.preprocessing = PreprocessSpec::name();
            settings.set_index_spec(options.index.value_or(IndexSpec{}));
            settings.hnsw.ef_search = options.hnsw_ef_search;
            store = Store::create(options.store_dir, settings);
        } else if (store->settings().dimension != embedder->dimension()) {
            throw Error(fmt::format("{}: the model gives {}-d vectors but the store holds {}-d vectors",
                                    model.path.string(), embedder->dimension(), store->settings().dimension));
        }
        if (store->settings().preprocessing != PreprocessSpec::name())
            throw Error(fmt::format("{}: the store was built with preprocessing '{}', this cbir uses '{}'",
                                    store->dir().string(), store->settings().preprocessing, PreprocessSpec::name()));

        const uint64_t generation_before = store->catalogue().generation();
        std::vector<std::filesystem::path> paths;
        for (const auto& c : todo) paths.push_back(c.path);
        PipelineOptions pipeline;
        pipeline.batch = options.batch;
        pipeline.reader_threads = options.reader_threads;
        PipelineCallbacks pipeline_callbacks;
        pipeline_callbacks.on_failure = [&](size_t i, const std::string& reason) { fail(todo[i].path, reason); };
        pipeline_callbacks.on_progress = callbacks.on_progress;
        // One transaction per batch: a run stopped midway keeps every batch it committed.
        pipeline_callbacks.on_batch = [&](const std::vector<size_t>& indices, const std::vector<PreparedImage>& images,
                                          const std::vector<float>& vectors, int dimension) {
            Transaction txn(store->catalogue());
            for (size_t b = 0; b < images.size(); ++b) {
                const Candidate& c = todo[indices[b]];
                ImageRecord record;
                record.path = c.catalogue_path;
                record.size = images[b].stat.size;
                record.mtime_ns = images[b].stat.mtime_ns;
                record.sha256 = images[b].sha256;
                record.width = images[b].width;
                record.height = images[b].height;
                record.vector.assign(vectors.begin() + static_cast<long>(b) * dimension,
                                     vectors.begin() + static_cast<long>(b + 1) * dimension);
                store->catalogue().upsert(record);
                ++(c.known ? summary.updated : summary.added);
            }
            txn.commit();
        };
        run_embedding_pipeline(paths, *embedder, spec, pipeline, pipeline_callbacks);
        update_index_file(*store, generation_before);
    } else if (store) {
        // Nothing new, but a missing or stale index file is still brought up to date.
        update_index_file(*store, store->catalogue().generation());
    }

    summary.store_count = store ? store->catalogue().count() : 0;
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return summary;
}

}  // namespace cbir
