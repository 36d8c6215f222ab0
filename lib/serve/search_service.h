#pragma once
// `cbir serve`'s engine, apart from the web server (its errors carry the HTTP status they answer with,
// RequestError, the one place HTTP enters): one store with its model and index, opened once and shared by
// every request thread. Searches run in parallel with each other. Writes (add, remove) take turns:
// each commits to the catalogue (the source of truth) and then reaches the in-memory index before it
// returns, so an added image is found by the very next search and nothing is ever half-applied. The
// index file is written back when it changed, every save_interval and at close, so `cbir query`
// reads a current index.
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "embed/embedder.h"
#include "embed/model_file.h"
#include "pipeline/prepare.h"
#include "index/index_file.h"
#include "search/searcher.h"
#include "serve/embedding_batcher.h"
#include "store/store.h"
#include "store/writer_lock.h"
#include "util/error.h"
#include "util/file_stat.h"

namespace cbir {

struct ServiceOptions {
    std::filesystem::path store_dir;
    std::optional<std::filesystem::path> model;  // must be the store's when given
    // Folders whose files may be added by path; default: the folder that holds the store.
    std::vector<std::filesystem::path> roots;
    int threads = 0;  // inference threads; 0 = all cores
    int batch = 8;    // most images per forward pass
    PrecisionRequest precision = PrecisionRequest::Default;  // see embed/precision.h
    bool fast_decode = false;  // refused on a store built without it; implied on one built with it
    int save_interval_seconds = 60;
    // Also keep the model unoptimised, as a one-shot `cbir query` runs it, so that searches asking
    // for it (SearchRequest::one_shot) get the very vectors, and so distances, the CLI would compute
    // (optimize_for_inference folds the batch norms: its features differ by ~1e-6). Costs a second
    // copy of the weights (45 MB for ResNet18).
    bool one_shot_embedder = false;
};

// A request the service refuses: the HTTP status to answer with and a message for the client.
class RequestError : public Error {
public:
    RequestError(int status, const std::string& message) : Error(message), status_(status) {}
    int status() const { return status_; }

private:
    int status_;
};

struct SearchRequest {
    int k = 10;
    int ef = 0;      // 0 = the store's default
    int nprobe = 0;  // 0 = the store's default
    std::optional<float> max_distance;
    // What a client that must get exactly what `cbir query` would print asks of the answer (else 409,
    // and it searches itself): images embedded by the unoptimised model, as a one-shot query does;
    bool one_shot = false;
    // the index searched reflecting exactly this catalogue state, and saved as such (what a query
    // would load from the index file: a graph grown by inserts since is not the same graph);
    std::optional<CatalogueState> catalogue_state;
    // and this model, precision and preprocessing recipe.
    std::optional<std::string> model_sha256;
    std::optional<std::string> precision;  // precision_name() of what the client would compute in
    std::optional<std::string> preprocessing;
};


struct SearchAnswer {
    // Where the query vector came from: "vector" (given), "id" (a stored row), "stored" (an upload
    // whose bytes are already in the store: its vector, as `cbir query` uses for an indexed file) or
    // "embedded".
    std::string query_kind;
    Metric metric = Metric::L2;
    std::string index_kind;  // what was searched: hnsw, ivf, ivfpq or flat
    std::vector<QueryHit> hits;
    double embed_ms = 0;
    double search_ms = 0;
};

struct AddResult {
    int64_t id = 0;
    std::string path;    // absolute, as catalogued
    std::string status;  // "added", "updated" (the path's file changed), "unchanged" or "removed"
};

// A catalogued image and its file's bytes, checked against the row.
struct CataloguedFile {
    ImageRecord record;
    std::string bytes;
};

struct ServiceStatus {
    std::filesystem::path store_dir;
    std::vector<std::filesystem::path> roots;
    size_t images = 0;   // catalogue rows
    size_t indexed = 0;  // vectors in the searched index
    std::string index_kind;  // what is searched: hnsw, ivf, ivfpq or flat
    std::string index_spec;  // the store's choice, e.g. "HNSW32"
    Metric metric = Metric::L2;
    int dimension = 0;
    ModelFile model;
    uint64_t generation = 0;        // the catalogue's
    uint64_t saved_generation = 0;  // the index file's
    size_t images_embedded = 0;
    size_t inference_batches = 0;
};

class SearchService {
public:
    // Takes the store's writer lock for the service's life, loads the model and the index (catching
    // the index file up with the catalogue). Throws cbir::Error when the store or model is unusable.
    static std::unique_ptr<SearchService> open(const ServiceOptions& options);
    ~SearchService();  // close()

    SearchAnswer search_vector(const std::vector<float>& vector, const SearchRequest& request) const;
    SearchAnswer search_id(int64_t id, const SearchRequest& request) const;
    SearchAnswer search_image(const std::string& bytes, const SearchRequest& request) const;

    // An uploaded image, kept in the store's uploads/ folder under its content hash.
    AddResult add_upload(const std::string& bytes);
    // A file on the server under one of the roots (a relative path is taken from the first root).
    AddResult add_path(const std::string& path);
    // Removes a row; an uploaded file goes with it, the user's own files never do. 404 if absent.
    AddResult remove_id(int64_t id);
    AddResult remove_path(const std::string& path);

    std::optional<ImageRecord> image(int64_t id) const;
    // The file of a catalogued image, for serving: 404 without the row, 410 when the file is no
    // longer what the row says (read_catalogued_file).
    CataloguedFile image_file(int64_t id) const;
    ServiceStatus status() const;
    // False once the store's folder was removed or replaced under the service: it then refuses every
    // write (503) and never writes its index file there.
    bool store_in_place() const;

    // Writes the index file if the index changed since it was last written.
    void save_if_changed();
    // Stops the background saver and saves. Call after the last request has been answered.
    void close();

private:
    explicit SearchService(const ServiceOptions& options);
    SearchAnswer search(const std::vector<float>& vector, const SearchRequest& request, std::string query_kind) const;
    // Decoded and embedded (by the one-shot embedder when asked); 422 when the bytes are not an image
    // cbir can read.
    std::vector<float> embed(const PreparedImage& image, bool one_shot = false) const;
    // 409 when the request's expectations (model, precision, recipe, one-shot) are not what this
    // service offers; the catalogue state is checked by search() under the index lock.
    void check_expectations(const SearchRequest& request) const;
    // The stored vector of the same content, else the image embedded.
    std::vector<float> vector_of(const PreparedImage& image) const;
    // Catalogue first, then the index; an upload's bytes are written to record.path first.
    AddResult commit(ImageRecord record, const std::string* upload = nullptr);
    AddResult remove_record(const ImageRecord& record);
    std::filesystem::path uploads_dir() const { return options_.store_dir / "uploads"; }
    std::filesystem::path resolve_under_roots(const std::string& path) const;
    // Throws RequestError 503 when the store's catalogue or lock file is not the one opened.
    void ensure_store_in_place() const;
    // Under write_mutex_, before a write or a save: the catalogue is still at the state this server
    // last left it in. Another program changing it (a backup restored in place keeps the inode)
    // would leave the in-memory index describing other rows: 503 from then on.
    void ensure_catalogue_is_ours();
    void note_commit(Catalogue& catalogue);
    void saver_loop();

    ServiceOptions options_;
    std::unique_ptr<WriterLock> lock_;
    std::unique_ptr<Store> writer_;  // catalogue writes, under write_mutex_
    std::unique_ptr<Store> reader_;  // catalogue reads from request threads (WAL: the last commit)
    ModelFile model_;
    PreprocessSpec preprocessing_;  // the store's recipe
    std::unique_ptr<Embedder> embedder_;
    std::unique_ptr<EmbeddingBatcher> batcher_;
    std::unique_ptr<Embedder> one_shot_embedder_;  // when options_.one_shot_embedder
    std::unique_ptr<EmbeddingBatcher> one_shot_batcher_;
    std::vector<std::filesystem::path> canonical_roots_;
    // The catalogue and lock files opened (device, inode), against which the paths are checked.
    std::optional<FileStat> opened_catalogue_;  // device and inode of what was opened
    std::optional<FileStat> opened_lock_;
    mutable std::atomic<bool> store_lost_{false};

    std::mutex write_mutex_;                // one writer at a time; held while the index file is saved
    mutable std::shared_mutex index_mutex_;  // searches share it; a write to the index takes it alone
    std::unique_ptr<VectorIndex> index_;
    CatalogueState index_state_;     // the catalogue state index_ reflects (under index_mutex_)
    uint64_t generation_ = 0;        // catalogue generation the index reflects (under write_mutex_)
    std::string state_token_;        // the catalogue's token for generation_ (under write_mutex_)
    uint64_t saved_generation_ = 0;  // of the index file

    mutable std::mutex saver_mutex_;
    std::condition_variable saver_wake_;
    bool closing_ = false;
    std::thread saver_;
};

}  // namespace cbir
