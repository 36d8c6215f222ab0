#include "pipeline/indexer.h"

#include <chrono>

#include <fmt/format.h>

#include "embed/embedder.h"
#include "image/limits.h"
#include "pipeline/model_resolution.h"
#include "pipeline/embedding_pipeline.h"
#include "pipeline/walk.h"
#include "store/derived_index.h"
#include "store/maintenance.h"
#include "store/store.h"
#include "store/writer_lock.h"
#include "util/cancel.h"
#include "util/hash.h"
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

// --prune: rows under the input folders whose files are gone.
size_t prune_inputs(Store& store, const std::vector<std::filesystem::path>& inputs) {
    std::vector<std::string> roots;
    for (const auto& input : inputs)
        if (std::filesystem::is_directory(input)) roots.push_back(catalogue_key(input));
    if (roots.empty()) return 0;
    const auto gone = prune_store(store, roots, /*dry_run=*/true);
    if (gone.empty()) return 0;
    Transaction txn(store.catalogue());
    const size_t removed = store.catalogue().remove_paths(gone).size();
    txn.commit();
    return removed;
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

// A file whose content the catalogue already has (same sha256) takes that row's vector: a moved
// file's row follows it, a copy gets a row of its own. Nothing is decoded or embedded.
bool reuse_known_content(Store& store, const Candidate& c, IndexSummary& summary) {
    auto st = stat_file(c.path);
    // Over the file cap: not hashed (a sparse file can claim terabytes); the pipeline refuses it.
    if (!st || static_cast<uint64_t>(st->size) > max_image_file_bytes()) return false;
    std::string sha256;
    try {
        sha256 = sha256_file_hex(c.path);
    } catch (const Error&) {
        return false;  // unreadable: the pipeline reports it
    }
    auto twin = store.catalogue().find_by_sha256(sha256);
    if (!twin || twin->vector.size() != static_cast<size_t>(store.settings().dimension)) return false;
    Transaction txn(store.catalogue());
    if (!stat_file(twin->path)) {
        store.catalogue().move_row(twin->id, c.catalogue_path, st->size, st->mtime_ns);
        ++summary.moved;
    } else {
        ImageRecord copy = *twin;
        copy.path = c.catalogue_path;
        copy.size = st->size;
        copy.mtime_ns = st->mtime_ns;
        store.catalogue().upsert(copy);
        ++summary.copied;
    }
    txn.commit();
    return true;
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
        } else if (store && reuse_known_content(*store, c, summary)) {
            continue;
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

    // One writer at a time; held until the run ends (or the process dies). A new store's folder is
    // made first, to hold the lock file.
    std::error_code made;
    std::filesystem::create_directories(options.store_dir, made);
    WriterLock lock(options.store_dir);
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
            StoreSettings settings = new_store_settings(model, embedder->dimension(), options.metric.value_or(Metric::L2),
                                                        options.index.value_or(IndexSpec{}));
            settings.hnsw.ef_search = options.hnsw_ef_search;
            store = Store::create(options.store_dir, settings);
        } else if (store->settings().dimension != embedder->dimension()) {
            throw Error(fmt::format("{}: the model gives {}-d vectors but the store holds {}-d vectors",
                                    model.path.string(), embedder->dimension(), store->settings().dimension));
        }
        if (store->settings().preprocessing != PreprocessSpec::name())
            throw Error(fmt::format("{}: the store was built with preprocessing '{}', this cbir uses '{}'",
                                    store->dir().string(), store->settings().preprocessing, PreprocessSpec::name()));

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
        summary.interrupted = stop_requested();
        if (options.prune) summary.pruned = prune_inputs(*store, inputs);
        update_index_file(*store);
    } else if (store) {
        if (options.prune) summary.pruned = prune_inputs(*store, inputs);
        // Nothing to embed, but copies, deletions, or a missing or stale index file still reach it.
        update_index_file(*store);
    }

    summary.store_count = store ? store->catalogue().count() : 0;
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return summary;
}

}  // namespace cbir
