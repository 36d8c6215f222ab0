#include "pipeline/indexer.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "embed/embedder.h"
#include "image/limits.h"
#include "pipeline/model_resolution.h"
#include "pipeline/precision_choice.h"
#include "pipeline/embedding_pipeline.h"
#include "pipeline/walk.h"
#include "store/file_identity.h"
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

// --prune: rows under the input folders whose files are gone.
size_t prune_inputs(Store& store, const WriterLock& held, const std::vector<std::filesystem::path>& inputs) {
    std::vector<std::string> roots;
    for (const auto& input : inputs)
        if (std::filesystem::is_directory(input)) roots.push_back(catalogue_key(input));
    if (roots.empty()) return 0;
    return remove_rows(store, held, rows_whose_files_are_gone(store, roots));
}

void check_requested_settings(const Store& store, const IndexOptions& options) {
    const auto& s = store.settings();
    if (options.metric && *options.metric != s.metric)
        throw Error(fmt::format("{}: the store uses metric '{}'; it cannot be changed to '{}' (use a new --store)",
                                store.dir().string(), metric_name(s.metric), metric_name(*options.metric)));
    // An index string or build parameters name what a new store gets; an existing store keeps what
    // it has, and a different request is refused rather than ignored.
    const IndexSpec requested = options.index.value_or(options.index_parameters.applied_to(s.index));
    if (!same_index_build(requested, s.index)) {
        std::string arguments = "reindex --index " + requested.describe();
        if (requested.kind == IndexKind::Hnsw && requested.hnsw_ef_construction != s.index.hnsw_ef_construction)
            arguments += " --ef-construction " + std::to_string(requested.hnsw_ef_construction);
        const std::string built = s.index.kind == IndexKind::Hnsw
                                      ? fmt::format("{} (ef_construction {})", s.index.describe(), s.index.hnsw_ef_construction)
                                      : s.index.describe();
        throw Error(fmt::format("{}: the store's index is {}; index settings apply when a store is made: change them "
                                "with '{}' (no re-embedding)",
                                store.dir().string(), built, store_command(store.dir(), arguments)));
    }
    preprocessing_for_store(store, options.fast_decode);  // refuses --fast-decode on an exact store
}

// The store's settings from the model that will embed into it.
std::unique_ptr<Store> create_store(const IndexOptions& options, const ModelFile& model, int dimension,
                                    Precision precision) {
    const IndexSpec spec = options.index.value_or(options.index_parameters.applied_to(IndexSpec{}));
    StoreSettings settings = new_store_settings(model, dimension, options.metric.value_or(Metric::L2), spec,
                                                preprocessing_for(options.fast_decode));
    settings.precision = precision;
    return Store::create(options.store_dir, settings);
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
    auto twin = row_with_content(store.catalogue(), sha256, store.settings().dimension);
    if (!twin) return false;
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
            if (st && row_is_current(*st, row->second.size, row->second.mtime_ns)) {
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

// The model that embeds this run's files, and the store it embeds into: the existing one (whose
// model it must be), or a new one recorded with this model's dimension.
std::shared_ptr<Embedder> embedder_for(std::unique_ptr<Store>& store, const IndexOptions& options) {
    ModelFile model = store ? model_for_existing_store(*store, options.model)
                            : model_for_new_store(options.model, options.executable_dir);
    warn_if_untrained(model);
    EmbedderOptions embedder_options;
    embedder_options.threads = options.threads;
    auto load = [&] { return load_embedder(model.path, embedder_options, options.precision, store.get()); };
    std::shared_ptr<Embedder> embedder = options.load_model ? options.load_model(model.path, load)
                                                            : std::shared_ptr<Embedder>(load());
    // A model loaded for another shard was checked against that shard's recipe; this one's too.
    if (store && store->settings().precision && *store->settings().precision != embedder->precision())
        throw Error(fmt::format("{}: precision mismatch: the store's vectors were made in {}, this run computes {}",
                                store->dir().string(), precision_name(*store->settings().precision),
                                precision_name(embedder->precision())));
    if (!store) {
        store = create_store(options, model, embedder->dimension(), embedder->precision());
    } else if (store->settings().dimension != embedder->dimension()) {
        throw Error(fmt::format("{}: the model gives {}-d vectors but the store holds {}-d vectors", model.path.string(),
                                embedder->dimension(), store->settings().dimension));
    } else if (!store->settings().precision) {
        store->record_precision(embedder->precision());  // load_embedder accepted it for an unrecorded store
    }
    return embedder;
}

// Decodes and embeds the candidates, one transaction per batch: a run stopped midway keeps every
// batch it committed.
void embed_into_store(Store& store, Embedder& embedder, const std::vector<Candidate>& todo, const IndexOptions& options,
                      const IndexCallbacks& callbacks, IndexSummary& summary,
                      const std::function<void(const std::filesystem::path&, const std::string&)>& fail) {
    std::vector<std::filesystem::path> paths;
    for (const auto& c : todo) paths.push_back(c.path);
    PipelineOptions pipeline;
    pipeline.batch = options.batch;
    pipeline.reader_threads = options.reader_threads;
    PipelineCallbacks pipeline_callbacks;
    pipeline_callbacks.on_failure = [&](size_t i, const std::string& reason) { fail(todo[i].path, reason); };
    pipeline_callbacks.on_progress = callbacks.on_progress;
    pipeline_callbacks.on_batch = [&](const std::vector<size_t>& indices, const std::vector<PreparedImage>& images,
                                      const std::vector<float>& vectors, int dimension) {
        Transaction txn(store.catalogue());
        for (size_t b = 0; b < images.size(); ++b) {
            const Candidate& c = todo[indices[b]];
            const PreparedImage& image = images[b];
            store.catalogue().upsert(image_record(c.catalogue_path, image.stat, image.sha256, image.width, image.height,
                                                  {vectors.begin() + static_cast<long>(b) * dimension,
                                                   vectors.begin() + static_cast<long>(b + 1) * dimension}));
            ++(c.known ? summary.updated : summary.added);
        }
        txn.commit();
    };
    run_embedding_pipeline(paths, embedder, preprocessing_for_store(store, options.fast_decode), pipeline,
                           pipeline_callbacks);
}

}  // namespace

IndexSummary& IndexSummary::operator+=(const IndexSummary& other) {
    considered += other.considered;
    added += other.added;
    updated += other.updated;
    unchanged += other.unchanged;
    moved += other.moved;
    copied += other.copied;
    pruned += other.pruned;
    failed += other.failed;
    store_count += other.store_count;
    seconds += other.seconds;
    interrupted = interrupted || other.interrupted;
    return *this;
}

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
    const bool created_folder = std::filesystem::create_directories(options.store_dir, made);
    WriterLock lock(options.store_dir);
    // A run refused before its store exists (a precision the model cannot run in, a model that does
    // not load) leaves no folder holding only a lock file, which later commands would call no store.
    struct LeaveNoEmptyFolder {
        const std::filesystem::path& dir;
        bool armed;
        ~LeaveNoEmptyFolder() {
            if (!armed || Store::exists(dir)) return;
            std::error_code ec;
            std::filesystem::remove(writer_lock_file(dir), ec);
            std::filesystem::remove(dir, ec);  // only when empty
        }
    } leave_no_empty_folder{options.store_dir, created_folder};
    std::unique_ptr<Store> store;
    if (Store::exists(options.store_dir)) {
        store = Store::open(options.store_dir);
        check_requested_settings(*store, options);
        remove_abandoned_files(*store);  // the writer lock is ours: no save of another is under way
    }
    auto files = collect_image_files(inputs, [&](const WalkProblem& p) { fail(p.path, p.reason); });
    if (options.owns)
        files.erase(std::remove_if(files.begin(), files.end(),
                                   [&](const std::filesystem::path& f) { return !options.owns(catalogue_key(f)); }),
                    files.end());
    const std::vector<Candidate> todo = select_changed(files, store.get(), summary);
    if (!todo.empty() || !store) {
        // A new store is made (catalogue and settings) before anything is embedded, even when there
        // is nothing to embed: the run said it indexed into it, and queries then find an empty store.
        // The model is loaded only when there is something to embed: a re-run over an unchanged
        // folder costs a walk and a few stats.
        auto embedder = embedder_for(store, options);
        if (!todo.empty()) {
            store->record_index_run_started();
            embed_into_store(*store, *embedder, todo, options, callbacks, summary, fail);
        }
        summary.interrupted = stop_requested();
    }
    if (store) {
        if (options.prune) summary.pruned = prune_inputs(*store, lock, inputs);
        // Copies, deletions, or a missing or stale index file reach the index even with nothing embedded.
        refresh_index_file(*store);
        if (!summary.interrupted) store->record_index_run_finished();
    }
    summary.store_count = store ? store->catalogue().count() : 0;
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return summary;
}

}  // namespace cbir
