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
#include "serve/serve_backend.h"
#include "store/store.h"
#include "store/writer_lock.h"
#include "util/error.h"
#include "util/file_stat.h"

namespace cbir {

// The model a service embeds with, loaded once: the services of one process (the shards one rank
// of a set serves) share it instead of each loading its own copy.
struct EmbeddingEngine {
    ModelFile model;
    size_t values_per_image = 0;  // of the inputs the batcher stacks (the store's recipe)
    std::unique_ptr<Embedder> embedder;
    std::unique_ptr<EmbeddingBatcher> batcher;  // uses *embedder: declared after it, destroyed before
    std::unique_ptr<Embedder> one_shot_embedder;  // when ServiceOptions::one_shot_embedder
    std::unique_ptr<EmbeddingBatcher> one_shot_batcher;
};

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
    // Another service's engine to share (its model must be the store's); null: load the store's model.
    std::shared_ptr<EmbeddingEngine> engine;
};

class SearchService final : public ServeBackend {
public:
    // Takes the store's writer lock for the service's life, loads the model and the index (catching
    // the index file up with the catalogue). Throws cbir::Error when the store or model is unusable.
    static std::unique_ptr<SearchService> open(const ServiceOptions& options);
    ~SearchService() override;  // close()

    SearchAnswer search_vector(const std::vector<float>& vector, const SearchRequest& request) const override;
    SearchAnswer search_id(int64_t id, const SearchRequest& request) const override;
    SearchAnswer search_image(const std::string& bytes, const SearchRequest& request) const override;

    AddResult add_upload(const std::string& bytes) override;
    AddResult add_path(const std::string& path) override;
    AddResult remove_id(int64_t id) override;
    AddResult remove_path(const std::string& path) override;

    std::optional<ImageRecord> image(int64_t id) const override;
    CataloguedFile image_file(int64_t id) const override;
    ServiceStatus status() const override;
    bool store_in_place() const override;

    // The pieces a store set assembles across its shards (SetBackend), each the one rule a single
    // store follows too:
    // the stored vector of a row with these bytes' SHA-256 (an upload searched as `cbir query`
    // searches an indexed file), or nullopt;
    std::optional<std::vector<float>> vector_of_content(const std::string& sha256) const;
    // the bytes decoded and embedded (422 when they are not an image cbir can read);
    std::vector<float> embed_bytes(const std::string& bytes) const;
    // the catalogue key add_path(path) would file the image under (403 outside the roots, 404 when
    // there is no such file).
    std::string catalogue_key_of(const std::string& path) const;

    // The model and batcher this service embeds with, to share with the next service opened.
    std::shared_ptr<EmbeddingEngine> engine() const { return engine_; }

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
    // Commits, and records the catalogue file as the commit left it, under catalogue_file_mutex_.
    void commit_transaction(Transaction& transaction);
    // The catalogue file is as this server's last commit left it: nobody else wrote it.
    bool catalogue_file_as_left() const;
    void saver_loop();

    ServiceOptions options_;
    std::unique_ptr<WriterLock> lock_;
    std::unique_ptr<Store> writer_;  // catalogue writes, under write_mutex_
    std::unique_ptr<Store> reader_;  // catalogue reads from request threads (WAL: the last commit)
    ModelFile model_;
    PreprocessSpec preprocessing_;  // the store's recipe
    std::shared_ptr<EmbeddingEngine> engine_;
    std::vector<std::filesystem::path> canonical_roots_;
    // The catalogue and lock files opened (device, inode), against which the paths are checked.
    std::optional<FileStat> opened_catalogue_;  // device and inode of what was opened
    std::optional<FileStat> opened_lock_;
    mutable std::atomic<bool> store_lost_{false};
    mutable std::mutex catalogue_file_mutex_;
    std::optional<FileStat> catalogue_file_left_;  // size, mtime, ctime after this server's last commit

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
