#pragma once
// The catalogue: a SQLite database that is the store's source of truth. One row per image (path,
// size, mtime, content hash, pixel size, the feature vector) and a key/value table of metadata.
// Every change runs in a transaction and bumps a generation counter, so a derived index can say
// which state of the catalogue it was built from and what changed since.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace cbir {

// What to do when SQLite finds the catalogue damaged: it is the one file of a store that cannot be
// rebuilt from the others.
inline constexpr const char* kDamagedCatalogueRecovery =
    "restore the store from a backup, or move it aside and index the photos into a new store (sqlite3's .recover "
    "can salvage rows from the old file)";

struct ImageRecord {
    int64_t id = 0;
    std::string path;  // absolute
    int64_t size = 0;
    int64_t mtime_ns = 0;
    std::string sha256;
    int width = 0;
    int height = 0;
    std::vector<float> vector;
};

struct FileState {
    int64_t id;
    int64_t size;
    int64_t mtime_ns;
};

// How a catalogue is opened. ReadOnly never writes a byte (a read-only mount, a store without write
// permission, or a query that has no business writing); Create makes a new database.
enum class CatalogueAccess { ReadOnly, ReadWrite, Create };

class Catalogue {
public:
    // Opens (or creates) the database. Throws cbir::Error naming the file.
    Catalogue(const std::filesystem::path& file, CatalogueAccess access);
    ~Catalogue();
    Catalogue(const Catalogue&) = delete;
    Catalogue& operator=(const Catalogue&) = delete;

    const std::filesystem::path& file() const { return file_; }

    std::optional<std::string> meta(const std::string& key) const;
    void set_meta(const std::string& key, const std::string& value);

    // Writes happen inside a transaction; commit() bumps the generation if anything changed.
    void begin();
    void commit();
    void rollback();
    bool in_transaction() const { return in_transaction_; }

    uint64_t generation() const;
    size_t count() const;
    bool read_only() const { return read_only_; }

    // Identity, for binding derived index files to the catalogue they were built from: a random id
    // made with the store, and a random token recorded with every generation. A copy of a store
    // shares its id and its history up to the copy; from then on each side draws its own tokens, so
    // (generation, token) names one state of one catalogue. Empty for a store made before
    // identities that has not been opened for writing since.
    std::string store_id() const;
    std::string state_token(uint64_t generation) const;

    // Inserts a new row or replaces the one with the same path; returns the row id.
    int64_t upsert(const ImageRecord& record);

    // path -> (id, size, mtime) for every row: what the indexer compares the folder against.
    std::unordered_map<std::string, FileState> file_states() const;
    std::optional<ImageRecord> find_by_path(const std::string& path) const;
    std::optional<ImageRecord> find_by_id(int64_t id) const;
    std::vector<std::string> paths_of(const std::vector<int64_t>& ids) const;
    // ids.size() * dimension floats in the order of ids; NaNs for an id that is not there.
    void vectors_of(const std::vector<int64_t>& ids, int dimension, std::vector<float>& out) const;

    // Deletes the rows of these paths (absent ones are ignored) and records their ids as deleted in
    // this transaction's generation, so derived indexes can drop them. Returns the ids removed.
    std::vector<int64_t> remove_paths(const std::vector<std::string>& paths);
    std::vector<int64_t> deleted_since(uint64_t generation) const;
    // A row with this content, for reusing a moved or copied file's vector.
    std::optional<ImageRecord> find_by_sha256(const std::string& sha256) const;
    // Points a row at a new path (a moved file): the vector is unchanged, so indexes are unaffected.
    void move_row(int64_t id, const std::string& path, int64_t size, int64_t mtime_ns);
    std::vector<std::pair<int64_t, std::string>> all_paths() const;
    // SQLite's own check of the file.
    std::vector<std::string> integrity_check() const;  // {"ok"}, or one line per problem
    // Rows whose vector is not dimension floats.
    size_t rows_with_wrong_dimension(int dimension) const;

    // Every row's id and vector (dimension floats each; rows of another size are left out).
    void all_vectors(int dimension, std::vector<int64_t>& ids, std::vector<float>& vectors) const;

    // Visits rows changed after `generation` (all rows for 0), in id order; the vector is only
    // valid during the call.
    void for_each_vector_since(uint64_t generation, const std::function<void(int64_t id, const float* vector, int dimension)>& visit) const;

private:
    sqlite3_stmt* prepare(const char* sql) const;
    void exec(const char* sql);

    std::filesystem::path file_;
    void ensure_identity();

    sqlite3* db_ = nullptr;
    bool read_only_ = false;
    bool in_transaction_ = false;
    bool changed_in_transaction_ = false;
};

// RAII: rolls back unless committed.
class Transaction {
public:
    explicit Transaction(Catalogue& catalogue) : catalogue_(catalogue) { catalogue_.begin(); }
    ~Transaction() {
        if (catalogue_.in_transaction()) {
            try {
                catalogue_.rollback();
            } catch (...) {
            }
        }
    }
    void commit() { catalogue_.commit(); }

private:
    Catalogue& catalogue_;
};

}  // namespace cbir
