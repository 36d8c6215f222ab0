#pragma once
// What the HTTP layer (HttpApi) serves: one store (SearchService) or a store set spread over the
// ranks of an MPI job (SetBackend), behind one interface so that both share every route, check and
// answer. Errors carry the HTTP status they answer with (RequestError), the one place HTTP enters.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "embed/embedder.h"
#include "embed/model_file.h"
#include "index/index_file.h"
#include "index/metric.h"
#include "search/searcher.h"
#include "store/catalogue.h"
#include "util/error.h"

namespace cbir {

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
    // Whether the request asks for any of the above (a store set answers none of them: 409).
    bool has_expectations() const {
        return one_shot || catalogue_state || model_sha256 || precision || preprocessing;
    }
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
    std::filesystem::path store_dir;  // a set's folder for a set
    int shards = 0;  // 0: one store; else the set's S (the counts below add up its shards)
    int ranks = 0;   // processes serving the set (1 without MPI)
    std::vector<std::filesystem::path> roots;
    size_t images = 0;   // catalogue rows
    size_t indexed = 0;  // vectors in the searched index
    std::string index_kind;  // what is searched: hnsw, ivf, ivfpq or flat
    std::string index_spec;  // the store's choice, e.g. "HNSW32"
    Metric metric = Metric::L2;
    int dimension = 0;
    ModelFile model;
    uint64_t generation = 0;        // the catalogue's (a set: the sum of its shards')
    uint64_t saved_generation = 0;  // the index file's (a set: the sum of its shards')
    size_t images_embedded = 0;
    size_t inference_batches = 0;
};

class ServeBackend {
public:
    virtual ~ServeBackend() = default;

    virtual SearchAnswer search_vector(const std::vector<float>& vector, const SearchRequest& request) const = 0;
    virtual SearchAnswer search_id(int64_t id, const SearchRequest& request) const = 0;
    virtual SearchAnswer search_image(const std::string& bytes, const SearchRequest& request) const = 0;

    // An uploaded image, kept in the store's uploads/ folder under its content hash.
    virtual AddResult add_upload(const std::string& bytes) = 0;
    // A file on the server under one of the roots (a relative path is taken from the first root).
    virtual AddResult add_path(const std::string& path) = 0;
    // Removes a row; an uploaded file goes with it, the user's own files never do. 404 if absent.
    virtual AddResult remove_id(int64_t id) = 0;
    virtual AddResult remove_path(const std::string& path) = 0;

    virtual std::optional<ImageRecord> image(int64_t id) const = 0;
    // The file of a catalogued image, for serving: 404 without the row, 410 when the file is no
    // longer what the row says (read_catalogued_file).
    virtual CataloguedFile image_file(int64_t id) const = 0;
    virtual ServiceStatus status() const = 0;
    // False once a store's folder was removed or replaced under the service: it then refuses every
    // write (503).
    virtual bool store_in_place() const = 0;
};

}  // namespace cbir
