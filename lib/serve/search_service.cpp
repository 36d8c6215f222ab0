#include "serve/search_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "image/image_header.h"
#include "image/preprocess.h"
#include "pipeline/model_resolution.h"
#include "pipeline/precision_choice.h"
#include "serve/catalogued_file.h"
#include "search/search_limits.h"
#include "store/derived_index.h"
#include "store/file_identity.h"
#include "util/atomic_file.h"
#include "util/file_stat.h"
#include "util/hash.h"
#include "util/log.h"

namespace cbir {
namespace {

double milliseconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Opens root/relative without following a symlink anywhere on the way (each folder opened with
// O_NOFOLLOW from the one before): what is opened is beneath the root however the folders change
// while it happens. -1 (errno set) otherwise.
int open_beneath(const std::filesystem::path& root, const std::filesystem::path& relative) {
    int dir = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    std::vector<std::filesystem::path> parts(relative.begin(), relative.end());
    for (size_t i = 0; dir >= 0 && i < parts.size(); ++i) {
        const bool last = i + 1 == parts.size();
        const int next = ::openat(dir, parts[i].c_str(),
                                  O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY));
        const int saved = errno;
        ::close(dir);
        errno = saved;
        dir = next;
    }
    return dir;
}

}  // namespace

SearchService::SearchService(const ServiceOptions& options) : options_(options) {}

std::unique_ptr<SearchService> SearchService::open(const ServiceOptions& options) {
    std::unique_ptr<SearchService> service(new SearchService(options));
    SearchService& s = *service;
    s.options_.store_dir = std::filesystem::absolute(options.store_dir).lexically_normal();
    s.reader_ = Store::open(s.options_.store_dir);  // first: a missing store is reported, not created
    s.lock_ = std::make_unique<WriterLock>(s.options_.store_dir);
    s.writer_ = Store::open(s.options_.store_dir);
    s.opened_lock_ = stat_file(writer_lock_file(s.options_.store_dir));
    s.opened_catalogue_ = stat_file(catalogue_file(s.options_.store_dir));

    if (s.options_.roots.empty()) s.options_.roots.push_back(s.options_.store_dir.parent_path());
    for (const auto& root : s.options_.roots) {
        std::error_code ec;
        auto canonical = std::filesystem::canonical(root, ec);
        if (ec || !std::filesystem::is_directory(canonical))
            throw Error(fmt::format("{}: not a folder (--root)", root.string()));
        s.canonical_roots_.push_back(canonical);
    }

    s.preprocessing_ = preprocessing_for_store(*s.writer_, options.fast_decode);
    s.model_ = model_for_existing_store(*s.writer_, options.model);
    if (options.engine) {
        // The batcher only stacks prepared inputs: a store whose recipe makes inputs of another size
        // (or another model) cannot share it.
        if (options.engine->values_per_image != s.preprocessing_.values_per_image())
            throw Error(fmt::format("{}: this store's preprocessing differs from the shared model's",
                                    s.options_.store_dir.string()));
        if (options.engine->model.sha256 != s.model_.sha256)
            throw Error(fmt::format("{}: this store was built with model sha256 {}, the shared model is {}",
                                    s.options_.store_dir.string(), s.model_.sha256, options.engine->model.sha256));
        s.engine_ = options.engine;
    } else {
        warn_if_untrained(s.model_);
        EmbedderOptions embedder_options;
        embedder_options.threads = options.threads;
        auto engine = std::make_shared<EmbeddingEngine>();
        engine->model = s.model_;
        engine->values_per_image = s.preprocessing_.values_per_image();
        engine->embedder = load_embedder(s.model_.path, embedder_options, options.precision, s.writer_.get());
        // The server adds vectors: a store made before precisions were recorded records the one it
        // will add in, as an index run does, so queries (and one-shot clients) know it.
        if (!s.writer_->settings().precision && !s.writer_->catalogue().read_only())
            s.writer_->record_precision(engine->embedder->precision());
        engine->batcher = std::make_unique<EmbeddingBatcher>(*engine->embedder, s.preprocessing_.values_per_image(), options.batch);
        if (options.one_shot_embedder) {
            embedder_options.optimize = false;  // as embed_queries loads it for a few queries
            // The precision the main model was loaded in (a quantized model runs in int8 whatever it is given).
            embedder_options.precision = engine->embedder->precision() == Precision::Int8 ? Precision::Float32
                                                                                         : engine->embedder->precision();
            engine->one_shot_embedder = Embedder::load(s.model_.path, embedder_options);
            engine->one_shot_batcher = std::make_unique<EmbeddingBatcher>(*engine->one_shot_embedder,
                                                                          s.preprocessing_.values_per_image(), options.batch);
        }
        s.engine_ = std::move(engine);
    }
    if (s.engine_->embedder->dimension() != s.writer_->settings().dimension)
        throw Error(fmt::format("{}: the model gives {} dimensions, the store holds {}", s.model_.path.string(),
                                s.engine_->embedder->dimension(), s.writer_->settings().dimension));

    // The index searches through the reader connection (IVF-PQ re-ranks from it); it is caught up
    // with the catalogue and written back now, so saved_generation_ is the file's.
    s.generation_ = s.reader_->catalogue().generation();
    s.catalogue_file_left_ = stat_file(catalogue_file(s.options_.store_dir));
    s.state_token_ = s.reader_->catalogue().state_token(s.generation_);
    s.index_ = open_search_index(*s.reader_, IndexWriteBack::IfChanged, IndexFileHolding::Copied);
    s.index_state_ = catalogue_state(*s.reader_, s.generation_);
    s.saved_generation_ = s.generation_;
    if (s.options_.save_interval_seconds > 0) s.saver_ = std::thread([&s] { s.saver_loop(); });
    return service;
}

SearchService::~SearchService() {
    try {
        close();
    } catch (const std::exception& e) {
        log_warning(fmt::format("closing the store: {}", e.what()));
    }
}

void SearchService::check_expectations(const SearchRequest& request) const {
    if (request.one_shot && !engine_->one_shot_batcher)
        throw RequestError(409, "this server does not keep the model unoptimised for one-shot queries");
    if (request.model_sha256 && *request.model_sha256 != model_.sha256)
        throw RequestError(409, fmt::format("this server embeds with another model ({}, sha256 {})",
                                            model_.path.string(), model_.sha256));
    if (request.precision && *request.precision != precision_name(engine_->embedder->precision()))
        throw RequestError(409, "this server embeds at another precision (cbir serve --precision)");
    if (request.preprocessing && *request.preprocessing != preprocessing_.name())
        throw RequestError(409, fmt::format("this server preprocesses images as {}", preprocessing_.name()));
}

SearchAnswer SearchService::search(const std::vector<float>& vector, const SearchRequest& request,
                                   std::string query_kind) const {
    check_expectations(request);
    const int dimension = reader_->settings().dimension;
    if (static_cast<int>(vector.size()) != dimension)
        throw RequestError(400, fmt::format("the vector has {} values; this store's have {}", vector.size(), dimension));
    for (float v : vector)
        if (!std::isfinite(v)) throw RequestError(400, "the vector holds a value that is not a finite number");
    {
        // Distances are float32 sums of squares or products: from a vector whose squared norm passes a
        // quarter of FLT_MAX they could overflow to infinity (null in JSON, and an arbitrary order).
        // Checked as the index will see it (cosine normalises, which a tiny vector can overflow).
        std::vector<float> prepared = vector;
        prepare_for_metric(reader_->settings().metric, prepared.data(), prepared.size());
        double norm2 = 0;
        for (float v : prepared) norm2 += static_cast<double>(v) * v;
        if (!std::isfinite(norm2) || norm2 > FLT_MAX / 4)
            throw RequestError(400, fmt::format("the vector is out of range: its squared norm would overflow float32 "
                                                "distances (at most {:.3g})",
                                                FLT_MAX / 4));
    }
    if (request.max_distance && !std::isfinite(*request.max_distance))
        throw RequestError(400, "max_distance must be a finite number");
    if (!kTopKBounds.contains(request.k))
        throw RequestError(400, fmt::format("k must be between {} and {}", kTopKBounds.min, kTopKBounds.max));
    if (!kEfBounds.contains(request.ef) || !kNprobeBounds.contains(request.nprobe))
        throw RequestError(400, fmt::format("ef must be between {} and {}, nprobe between {} and {} (0: the store's "
                                            "default)", kEfBounds.min, kEfBounds.max, kNprobeBounds.min,
                                            kNprobeBounds.max));

    SearchParams params;
    params.k = request.k;
    params.ef = request.ef;
    params.nprobe = request.nprobe;  // 0: the store's default
    const auto started = std::chrono::steady_clock::now();
    SearchAnswer answer;
    answer.query_kind = std::move(query_kind);
    answer.metric = reader_->settings().metric;
    {
        std::shared_lock<std::shared_mutex> lock(index_mutex_);
        if (request.catalogue_state) {
            const CatalogueState& expected = *request.catalogue_state;
            uint64_t saved_generation = 0;
            {
                std::lock_guard<std::mutex> saver_lock(saver_mutex_);
                saved_generation = saved_generation_;
            }
            if (expected.store_id != index_state_.store_id || expected.generation != index_state_.generation ||
                expected.token != index_state_.token)
                throw RequestError(409, fmt::format("this server searches another catalogue state (store {}, generation "
                                                    "{})", index_state_.store_id, index_state_.generation));
            if (saved_generation != index_state_.generation)
                throw RequestError(409, fmt::format("this server's index has changes not yet saved (generation {}, the "
                                                    "file's {})", index_state_.generation, saved_generation));
        }
        answer.index_kind = index_kind_name(index_->kind());
        answer.hits = find_hits(*index_, reader_->catalogue(), vector.data(), params, request.max_distance);
    }
    for (const QueryHit& hit : answer.hits)
        if (!std::isfinite(hit.distance)) throw Error(fmt::format("the distance to image {} is not a finite number", hit.id));
    answer.search_ms = milliseconds_since(started);
    return answer;
}

SearchAnswer SearchService::search_vector(const std::vector<float>& vector, const SearchRequest& request) const {
    return search(vector, request, "vector");
}

SearchAnswer SearchService::search_id(int64_t id, const SearchRequest& request) const {
    auto record = reader_->catalogue().find_by_id(id);
    if (!record) throw RequestError(404, fmt::format("no image with id {}", id));
    return search(record->vector, request, "id");
}

SearchAnswer SearchService::search_image(const std::string& bytes, const SearchRequest& request) const {
    const auto started = std::chrono::steady_clock::now();
    check_expectations(request);
    // Bytes already in the store are searched with their stored vector, as `cbir query` does for an
    // indexed file: the image finds itself at distance 0, and no inference runs. Not for a one-shot
    // query: `cbir query` takes a stored vector by the file's path (its client sends the id), and
    // embeds a file whose bytes are catalogued elsewhere.
    if (auto known = request.one_shot ? std::nullopt : vector_of_content(sha256_hex(bytes.data(), bytes.size()))) {
        SearchAnswer answer = search(*known, request, "stored");
        answer.embed_ms = milliseconds_since(started) - answer.search_ms;
        return answer;
    }
    const std::vector<float> vector = embed(prepare_image_bytes(bytes, preprocessing_), request.one_shot);
    const double embed_ms = milliseconds_since(started);
    SearchAnswer answer = search(vector, request, "embedded");
    answer.embed_ms = embed_ms;
    return answer;
}

std::optional<std::vector<float>> SearchService::vector_of_content(const std::string& sha256) const {
    auto known = row_with_content(reader_->catalogue(), sha256, reader_->settings().dimension);
    if (!known) return std::nullopt;
    return std::move(known->vector);
}

std::vector<float> SearchService::embed_bytes(const std::string& bytes) const {
    return embed(prepare_image_bytes(bytes, preprocessing_));
}

std::string SearchService::catalogue_key_of(const std::string& path) const {
    return catalogue_key(resolve_under_roots(path));
}

std::vector<float> SearchService::embed(const PreparedImage& image, bool one_shot) const {
    if (!image.ok()) throw RequestError(422, "not an image cbir can read: " + image.error);
    return (one_shot ? engine_->one_shot_batcher : engine_->batcher)->embed(image.input);
}

std::vector<float> SearchService::vector_of(const PreparedImage& image) const {
    // The same picture already catalogued elsewhere has its vector: no inference.
    if (auto twin = vector_of_content(image.sha256)) return std::move(*twin);
    return embed(image);
}

AddResult SearchService::add_upload(const std::string& bytes) {
    PreparedImage image = prepare_image_bytes(bytes, preprocessing_);
    if (!image.ok()) throw RequestError(422, "not an image cbir can read: " + image.error);
    // Content-addressed: the same upload twice is one file and one row.
    const std::filesystem::path target = uploads_dir() / (image.sha256 + image_extension(bytes));  // never the client's name
    if (auto existing = reader_->catalogue().find_by_path(target.string())) {
        auto st = stat_file(target);  // a stored copy that is gone or damaged is written again below
        if (st && row_is_current(*st, existing->size, existing->mtime_ns)) return {existing->id, existing->path, "unchanged"};
    }
    // The file's size and mtime are the stored copy's, set when commit() writes it.
    return commit(image_record(target.string(), FileStat{}, image.sha256, image.width, image.height, vector_of(image)),
                  &bytes);
}

std::filesystem::path SearchService::resolve_under_roots(const std::string& path) const {
    if (path.empty() || path.find('\0') != std::string::npos) throw RequestError(400, "empty or invalid path");
    std::filesystem::path given(path);
    if (given.is_relative()) given = options_.roots.front() / given;
    given = std::filesystem::absolute(given).lexically_normal();
    // Symlinks and ".." are resolved before the check, so neither can lead outside the roots.
    std::error_code ec;
    const auto real = std::filesystem::weakly_canonical(given, ec);
    bool inside = false;
    for (const auto& root : canonical_roots_) inside = inside || (!ec && key_is_under(catalogue_key(real), catalogue_key(root)));
    if (!inside) throw RequestError(403, fmt::format("{} is not under a served root", path));
    if (!std::filesystem::is_regular_file(real, ec)) throw RequestError(404, fmt::format("{}: no such file", path));
    return given;
}

AddResult SearchService::add_path(const std::string& path) {
    const std::string key = catalogue_key_of(path);
    const auto existing = reader_->catalogue().find_by_path(key);
    auto st = stat_file(key);
    if (existing && st && row_is_current(*st, existing->size, existing->mtime_ns))
        return {existing->id, existing->path, "unchanged"};
    // Read through a descriptor opened beneath the root without following links: checking the path
    // and then opening it let a folder swapped for a symlink in between bring a file from elsewhere.
    int fd = -1;
    errno = ENOENT;
    for (size_t i = 0; i < canonical_roots_.size() && fd < 0; ++i)
        for (const auto& root : {std::filesystem::absolute(options_.roots[i]).lexically_normal(), canonical_roots_[i]})
            if (fd < 0 && key_is_under(key, catalogue_key(root))) fd = open_beneath(root, std::filesystem::path(key).lexically_relative(root));
    if (fd < 0)
        throw RequestError(403, fmt::format("{}: not opened beneath a served root without following a link ({})", path,
                                            std::strerror(errno)));
    PreparedImage image = prepare_image("/proc/self/fd/" + std::to_string(fd), preprocessing_);
    ::close(fd);
    if (!image.ok()) throw RequestError(422, fmt::format("{}: {}", path, image.error));
    return commit(image_record(key, image.stat, image.sha256, image.width, image.height, vector_of(image)));
}

AddResult SearchService::commit(ImageRecord record, const std::string* upload) {
    std::lock_guard<std::mutex> write(write_mutex_);
    ensure_store_in_place();  // before anything is written: no folder is re-created in a removed store
    ensure_catalogue_is_ours();
    if (upload) {
        // Written under the write lock, so a concurrent DELETE of the same upload cannot remove the
        // file between this write and the row's commit. A stored copy is kept (its mtime is the
        // row's) unless it is not the upload's bytes any more.
        const std::filesystem::path target(record.path);
        if (!std::filesystem::is_directory(target.parent_path())) {
            std::filesystem::create_directories(target.parent_path());
            sync_directory(options_.store_dir);
        }
        auto st = stat_file(target);
        std::string kept_sha256;
        if (st && st->size == static_cast<int64_t>(upload->size())) {
            try {
                kept_sha256 = sha256_file_hex(target);
            } catch (const Error&) {
            }
        }
        if (kept_sha256 != record.sha256) {
            AtomicFileWriter file(target);
            file.write(upload->data(), upload->size());
            file.commit();
            st = stat_file(target);
        }
        if (!st) throw Error(fmt::format("{}: cannot stat the stored upload", target.string()));
        record.size = st->size;
        record.mtime_ns = st->mtime_ns;
    }
    Catalogue& catalogue = writer_->catalogue();
    const auto existing = catalogue.find_by_path(record.path);
    // Decided here, under the write lock: of two identical adds racing, the second finds the first's row.
    if (existing && existing->sha256 == record.sha256 && existing->size == record.size &&
        existing->mtime_ns == record.mtime_ns)
        return {existing->id, existing->path, "unchanged"};
    Transaction transaction(catalogue);
    const int64_t id = catalogue.upsert(record);
    commit_transaction(transaction);
    ensure_store_in_place();  // removed during the commit: it went to a deleted file, which is not durable
    {
        std::unique_lock<std::shared_mutex> lock(index_mutex_);
        index_->add(id, record.vector.data());
        index_state_ = catalogue_state(*writer_, catalogue.generation());
    }
    note_commit(catalogue);
    return {id, record.path, existing ? "updated" : "added"};
}

AddResult SearchService::remove_id(int64_t id) {
    auto record = reader_->catalogue().find_by_id(id);
    if (!record) throw RequestError(404, fmt::format("no image with id {}", id));
    return remove_record(*record);
}

AddResult SearchService::remove_path(const std::string& path) {
    std::filesystem::path given(path);
    if (given.is_relative()) given = options_.roots.front() / given;
    auto record = reader_->catalogue().find_by_path(catalogue_key(given));
    if (!record) throw RequestError(404, fmt::format("{} is not in the store", path));
    return remove_record(*record);
}

AddResult SearchService::remove_record(const ImageRecord& record) {
    std::vector<int64_t> removed;
    {
        std::lock_guard<std::mutex> write(write_mutex_);
        ensure_store_in_place();
        ensure_catalogue_is_ours();
        Catalogue& catalogue = writer_->catalogue();
        {
            // Searches wait for the commit too: none may find in the index an id whose catalogue row
            // (its path) is already gone.
            std::unique_lock<std::shared_mutex> lock(index_mutex_);
            Transaction transaction(catalogue);
            removed = catalogue.remove_paths({record.path});
            commit_transaction(transaction);
            index_->remove(removed);
            index_state_ = catalogue_state(*writer_, catalogue.generation());
        }
        note_commit(catalogue);
        ensure_store_in_place();
        // Uploads are the store's own copies; files under the roots belong to the user and stay.
        const std::filesystem::path file(record.path);
        if (!removed.empty() && file.parent_path() == uploads_dir()) {
            std::error_code ec;
            std::filesystem::remove(file, ec);
        }
    }
    if (removed.empty()) throw RequestError(404, fmt::format("no image with id {}", record.id));
    return {record.id, record.path, "removed"};
}

std::optional<ImageRecord> SearchService::image(int64_t id) const { return reader_->catalogue().find_by_id(id); }

CataloguedFile SearchService::image_file(int64_t id) const {
    auto record = image(id);
    if (!record) throw RequestError(404, fmt::format("no image with id {}", id));
    std::string bytes = read_catalogued_file(*record);
    return {std::move(*record), std::move(bytes)};
}

// The store may be removed (rm -rf) while it is served, and a new one made at its path (`cbir index`
// succeeds: its lock file is a new one). SQLite would go on committing to the deleted catalogue and
// the index file would be written into the new store; so writes and saves first check that the
// catalogue and lock files at the store's paths are the ones opened.
bool SearchService::store_in_place() const {
    if (store_lost_) return false;
    const auto same = [](const std::optional<FileStat>& now, const std::optional<FileStat>& opened) {
        return now && opened && now->same_inode_as(*opened);
    };
    if (same(stat_file(catalogue_file(options_.store_dir)), opened_catalogue_) &&
        same(stat_file(writer_lock_file(options_.store_dir)), opened_lock_) && catalogue_file_as_left())
        return true;
    if (!store_lost_.exchange(true))
        log_warning(fmt::format("{}: the store was removed, replaced or written by another program while being "
                                "served; no write is accepted and the index file is not written any more (restart "
                                "cbir serve)",
                                options_.store_dir.string()));
    return false;
}

// With WAL, SQLite reads this server's own recent pages from the -wal file, so a catalogue file
// truncated or copied over in place (same inode) still answers the generation and token this server
// left: the file itself is compared with how its last commit left it (size, mtime, ctime).
void SearchService::commit_transaction(Transaction& transaction) {
    std::lock_guard<std::mutex> lock(catalogue_file_mutex_);
    transaction.commit();
    catalogue_file_left_ = stat_file(catalogue_file(options_.store_dir));
}

bool SearchService::catalogue_file_as_left() const {
    std::lock_guard<std::mutex> lock(catalogue_file_mutex_);
    const auto now = stat_file(catalogue_file(options_.store_dir));
    return now && catalogue_file_left_ && now->same_file_as(*catalogue_file_left_);
}

void SearchService::ensure_catalogue_is_ours() {
    Catalogue& catalogue = writer_->catalogue();
    const uint64_t generation = catalogue.generation();
    if (generation == generation_ && catalogue.state_token(generation) == state_token_) return;
    if (!store_lost_.exchange(true))
        log_warning(fmt::format("{}: the catalogue was changed by another program while served (generation {}, this "
                                "server left it at {}; a backup restored in place?); nothing is written to it any "
                                "more (restart cbir serve)",
                                catalogue.file().string(), generation, generation_));
    throw RequestError(503, fmt::format("{}: the catalogue was changed by another program while served; nothing is "
                                        "written to it any more (restart cbir serve)",
                                        options_.store_dir.string()));
}

void SearchService::note_commit(Catalogue& catalogue) {
    generation_ = catalogue.generation();
    state_token_ = catalogue.state_token(generation_);
}

void SearchService::ensure_store_in_place() const {
    if (!store_in_place())
        throw RequestError(503, fmt::format("{}: the store was removed or replaced while being served; nothing is "
                                            "written to it any more (restart cbir serve)",
                                            options_.store_dir.string()));
}

ServiceStatus SearchService::status() const {
    ServiceStatus s;
    s.store_dir = options_.store_dir;
    s.roots = options_.roots;
    s.images = reader_->catalogue().count();
    {
        std::shared_lock<std::shared_mutex> lock(index_mutex_);
        s.indexed = index_->size();
        s.index_kind = index_kind_name(index_->kind());
    }
    s.index_spec = reader_->settings().index.describe();
    s.metric = reader_->settings().metric;
    s.dimension = reader_->settings().dimension;
    s.model = model_;
    s.generation = reader_->catalogue().generation();
    {
        std::lock_guard<std::mutex> lock(saver_mutex_);
        s.saved_generation = saved_generation_;
    }
    s.images_embedded = engine_->batcher->images_embedded();
    s.inference_batches = engine_->batcher->batches_run();
    if (engine_->one_shot_batcher) {  // the one-shot queries of `cbir query`, by the unoptimised model
        s.images_embedded += engine_->one_shot_batcher->images_embedded();
        s.inference_batches += engine_->one_shot_batcher->batches_run();
    }
    return s;
}

void SearchService::save_if_changed() {
    std::lock_guard<std::mutex> write(write_mutex_);
    {
        std::lock_guard<std::mutex> lock(saver_mutex_);
        if (generation_ == saved_generation_) return;
    }
    if (!store_in_place()) return;  // never into another store made where this one was
    try {
        ensure_catalogue_is_ours();  // an index of other rows is never saved as current
    } catch (const RequestError&) {
        return;
    }
    {
        // Searches go on while the file is written; writers wait (they hold write_mutex_ to change it).
        std::shared_lock<std::shared_mutex> lock(index_mutex_);
        save_index_file(*index_, *writer_, generation_);
    }
    std::lock_guard<std::mutex> lock(saver_mutex_);
    saved_generation_ = generation_;
}

void SearchService::saver_loop() {
    std::unique_lock<std::mutex> lock(saver_mutex_);
    while (!closing_) {
        saver_wake_.wait_for(lock, std::chrono::seconds(options_.save_interval_seconds), [&] { return closing_; });
        if (closing_) break;
        lock.unlock();
        try {
            save_if_changed();
        } catch (const std::exception& e) {
            log_warning(fmt::format("could not write the index file ({}); the catalogue has every change", e.what()));
        }
        lock.lock();
    }
}

void SearchService::close() {
    {
        std::lock_guard<std::mutex> lock(saver_mutex_);
        if (closing_ && !saver_.joinable()) return;
        closing_ = true;
    }
    saver_wake_.notify_all();
    if (saver_.joinable()) saver_.join();
    if (index_) save_if_changed();
}

}  // namespace cbir
