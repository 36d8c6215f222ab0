#include "store/catalogue.h"

#include <sqlite3.h>

#include <cstring>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "util/error.h"

namespace cbir {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images(
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    path       TEXT NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    vector     BLOB NOT NULL,
    generation INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_generation ON images(generation);
CREATE TABLE IF NOT EXISTS deleted(
    id         INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_sha256 ON images(sha256);
INSERT OR IGNORE INTO meta(key, value) VALUES('generation', '0');
)sql";

// One row per generation: the random token that names that state (see Catalogue::state_token).
constexpr const char* kStatesSchema =
    "CREATE TABLE IF NOT EXISTS states(generation INTEGER PRIMARY KEY, token TEXT NOT NULL)";

std::string random_token() {
    std::random_device device;
    std::string out;
    for (int i = 0; i < 4; ++i) out += fmt::format("{:08x}", device());
    return out;
}

// A prepared statement that finalizes itself.
class Statement {
public:
    Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
    ~Statement() { sqlite3_finalize(stmt_); }
    operator sqlite3_stmt*() const { return stmt_; }

private:
    sqlite3_stmt* stmt_;
};

// What to tell the user when SQLite says the file is not (or no longer) a database.
std::string damage_hint(sqlite3* db) {
    const int code = db ? sqlite3_errcode(db) : SQLITE_OK;
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        return std::string(" — the catalogue is damaged: ") + kDamagedCatalogueRecovery;
    return "";
}

std::string column_text(sqlite3_stmt* stmt, int column) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
    return text ? std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt, column))) : std::string();
}

}  // namespace

Catalogue::Catalogue(const std::filesystem::path& file, CatalogueAccess access)
    : file_(file), read_only_(access == CatalogueAccess::ReadOnly) {
    const bool create = access == CatalogueAccess::Create;
    // FULLMUTEX: `cbir serve` reads one connection from many request threads at once.
    const int mode = read_only_ ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    const auto open = [&](const std::string& name, int extra) {
        sqlite3_close(db_);
        db_ = nullptr;
        return sqlite3_open_v2(name.c_str(), &db_, mode | SQLITE_OPEN_FULLMUTEX | extra, nullptr);
    };
    int rc = open(file.string(), 0);
    if (rc == SQLITE_OK && read_only_ &&
        sqlite3_exec(db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr) == SQLITE_CANTOPEN) {
        // A WAL database on a read-only mount with no -shm file: nothing can be writing it, so SQLite
        // may read it as immutable — unless its write-ahead log holds commits, which an immutable
        // read would silently leave out (inserts acknowledged before a crash, say).
        std::error_code ec;
        const auto wal_bytes = std::filesystem::file_size(file.string() + "-wal", ec);
        if (!ec && wal_bytes > 0) {
            sqlite3_close(db_);
            db_ = nullptr;
            throw Error(file.string() + ": its write-ahead log (-wal) holds commits that a read-only mount cannot "
                        "apply; open the store once where it is writable (any cbir command there), then read it here");
        }
        rc = open("file:" + file.string() + "?immutable=1", SQLITE_OPEN_URI);
    }
    if (rc != SQLITE_OK) {
        std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw Error(file.string() + ": cannot open catalogue: " + why);
    }
    sqlite3_busy_timeout(db_, 10000);
    try {
        // 16 KiB pages hold seven 2 KiB vectors each; the default 4 KiB pages held fewer than two,
        // so a 100k store took 417 MB. Only a new, empty database takes the setting.
        if (create) exec("PRAGMA page_size=16384");
        if (!read_only_) {
            // WAL: queries read the last committed state while an index run writes. FULL: a commit
            // is on disk before it returns, so an acknowledged insert survives a power cut.
            exec("PRAGMA journal_mode=WAL");
            exec("PRAGMA synchronous=FULL");
        }
        exec("PRAGMA foreign_keys=ON");
        // Reading the schema is the first real check that this is a SQLite file at all.
        if (create) {
            exec("BEGIN IMMEDIATE");
            exec(kSchema);
            exec(kStatesSchema);
            exec("COMMIT");
        } else {
            Statement check(prepare("SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('meta','images')"));
            if (sqlite3_step(check) != SQLITE_ROW || sqlite3_column_int(check, 0) != 2)
                throw Error(file.string() + ": not a cbir catalogue (tables missing)");
            if (!read_only_) {
                // Added after the first stores were made.
                exec("CREATE TABLE IF NOT EXISTS deleted(id INTEGER PRIMARY KEY, generation INTEGER NOT NULL)");
                exec(kStatesSchema);
            }
        }
        if (!read_only_) ensure_identity();
    } catch (...) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw;
    }
}

// A store id, and a token for the current generation (stores made before identities get them here).
void Catalogue::ensure_identity() {
    if (!store_id().empty() && !state_token(generation()).empty()) return;
    Transaction txn(*this);
    if (store_id().empty()) set_meta("store_id", random_token());
    Statement record(prepare("INSERT OR IGNORE INTO states(generation, token) "
                             "SELECT CAST(value AS INTEGER), ? FROM meta WHERE key = 'generation'"));
    const std::string token = random_token();
    sqlite3_bind_text(record, 1, token.c_str(), static_cast<int>(token.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(record) != SQLITE_DONE) throw Error(file_.string() + ": cannot record the store's state: " + sqlite3_errmsg(db_));
    txn.commit();
}

std::string Catalogue::store_id() const { return meta("store_id").value_or(""); }

std::string Catalogue::state_token(uint64_t generation) const {
    sqlite3_stmt* raw = nullptr;
    // A store made before identities, opened read-only, has no states table: no token.
    if (sqlite3_prepare_v2(db_, "SELECT token FROM states WHERE generation = ?", -1, &raw, nullptr) != SQLITE_OK) {
        sqlite3_finalize(raw);
        return "";
    }
    Statement stmt(raw);
    sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(generation));
    return sqlite3_step(stmt) == SQLITE_ROW ? column_text(stmt, 0) : "";
}

Catalogue::~Catalogue() {
    if (db_) sqlite3_close(db_);
}

sqlite3_stmt* Catalogue::prepare(const char* sql) const {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK)
        throw Error(file_.string() + ": catalogue error: " + sqlite3_errmsg(db_) + damage_hint(db_));
    return stmt;
}

void Catalogue::exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
        std::string why = message ? message : sqlite3_errmsg(db_);
        sqlite3_free(message);
        throw Error(file_.string() + ": catalogue error: " + why + damage_hint(db_));
    }
}

std::optional<std::string> Catalogue::meta(const std::string& key) const {
    Statement stmt(prepare("SELECT value FROM meta WHERE key = ?"));
    sqlite3_bind_text(stmt, 1, key.c_str(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) == SQLITE_ROW) return column_text(stmt, 0);
    return std::nullopt;
}

void Catalogue::set_meta(const std::string& key, const std::string& value) {
    Statement stmt(prepare("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    sqlite3_bind_text(stmt, 1, key.c_str(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, value.c_str(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_DONE) throw Error(file_.string() + ": cannot write metadata: " + sqlite3_errmsg(db_));
}

void Catalogue::begin() {
    // IMMEDIATE takes the write lock now, so a second writer waits (busy timeout) instead of failing
    // halfway through its batch.
    exec("BEGIN IMMEDIATE");
    in_transaction_ = true;
    changed_in_transaction_ = false;
}

void Catalogue::commit() {
    if (changed_in_transaction_) {
        exec("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'");
        Statement record(prepare("INSERT OR REPLACE INTO states(generation, token) "
                                 "SELECT CAST(value AS INTEGER), ? FROM meta WHERE key = 'generation'"));
        const std::string token = random_token();
        sqlite3_bind_text(record, 1, token.c_str(), static_cast<int>(token.size()), SQLITE_TRANSIENT);
        if (sqlite3_step(record) != SQLITE_DONE)
            throw Error(file_.string() + ": cannot record the new state: " + sqlite3_errmsg(db_));
    }
    exec("COMMIT");
    in_transaction_ = false;
}

void Catalogue::rollback() {
    in_transaction_ = false;
    exec("ROLLBACK");
}

uint64_t Catalogue::generation() const {
    auto value = meta("generation");
    return value ? std::stoull(*value) : 0;
}

size_t Catalogue::count() const {
    Statement stmt(prepare("SELECT count(*) FROM images"));
    sqlite3_step(stmt);
    return static_cast<size_t>(sqlite3_column_int64(stmt, 0));
}

int64_t Catalogue::upsert(const ImageRecord& r) {
    Statement stmt(prepare(
        "INSERT INTO images(path, size, mtime_ns, sha256, width, height, vector, generation) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, (SELECT CAST(value AS INTEGER) + 1 FROM meta WHERE key = 'generation')) "
        "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, "
        "width = excluded.width, height = excluded.height, vector = excluded.vector, generation = excluded.generation "
        "RETURNING id"));
    sqlite3_bind_text(stmt, 1, r.path.c_str(), static_cast<int>(r.path.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, r.size);
    sqlite3_bind_int64(stmt, 3, r.mtime_ns);
    sqlite3_bind_text(stmt, 4, r.sha256.c_str(), static_cast<int>(r.sha256.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int(stmt, 5, r.width);
    sqlite3_bind_int(stmt, 6, r.height);
    sqlite3_bind_blob(stmt, 7, r.vector.data(), static_cast<int>(r.vector.size() * sizeof(float)), SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_ROW) throw Error(file_.string() + ": cannot write image row: " + sqlite3_errmsg(db_));
    changed_in_transaction_ = true;
    return sqlite3_column_int64(stmt, 0);
}

std::unordered_map<std::string, FileState> Catalogue::file_states() const {
    std::unordered_map<std::string, FileState> out;
    Statement stmt(prepare("SELECT path, id, size, mtime_ns FROM images"));
    while (sqlite3_step(stmt) == SQLITE_ROW)
        out.emplace(column_text(stmt, 0),
                    FileState{sqlite3_column_int64(stmt, 1), sqlite3_column_int64(stmt, 2), sqlite3_column_int64(stmt, 3)});
    return out;
}

namespace {

std::optional<ImageRecord> read_record(sqlite3_stmt* stmt) {
    if (sqlite3_step(stmt) != SQLITE_ROW) return std::nullopt;
    ImageRecord r;
    r.id = sqlite3_column_int64(stmt, 0);
    r.path = column_text(stmt, 1);
    r.size = sqlite3_column_int64(stmt, 2);
    r.mtime_ns = sqlite3_column_int64(stmt, 3);
    r.sha256 = column_text(stmt, 4);
    r.width = sqlite3_column_int(stmt, 5);
    r.height = sqlite3_column_int(stmt, 6);
    const auto* blob = static_cast<const float*>(sqlite3_column_blob(stmt, 7));
    r.vector.assign(blob, blob + sqlite3_column_bytes(stmt, 7) / static_cast<int>(sizeof(float)));
    return r;
}

}  // namespace

std::optional<ImageRecord> Catalogue::find_by_path(const std::string& path) const {
    Statement stmt(prepare("SELECT id, path, size, mtime_ns, sha256, width, height, vector FROM images WHERE path = ?"));
    sqlite3_bind_text(stmt, 1, path.c_str(), static_cast<int>(path.size()), SQLITE_TRANSIENT);
    return read_record(stmt);
}

std::optional<ImageRecord> Catalogue::find_by_id(int64_t id) const {
    Statement stmt(prepare("SELECT id, path, size, mtime_ns, sha256, width, height, vector FROM images WHERE id = ?"));
    sqlite3_bind_int64(stmt, 1, id);
    return read_record(stmt);
}

std::vector<std::string> Catalogue::paths_of(const std::vector<int64_t>& ids) const {
    std::vector<std::string> out;
    Statement stmt(prepare("SELECT path FROM images WHERE id = ?"));
    for (int64_t id : ids) {
        sqlite3_reset(stmt);
        sqlite3_bind_int64(stmt, 1, id);
        out.push_back(sqlite3_step(stmt) == SQLITE_ROW ? column_text(stmt, 0) : std::string());
    }
    return out;
}

std::vector<int64_t> Catalogue::remove_paths(const std::vector<std::string>& paths) {
    std::vector<int64_t> removed;
    Statement find(prepare("SELECT id FROM images WHERE path = ?"));
    Statement erase(prepare("DELETE FROM images WHERE id = ?"));
    Statement record(prepare("INSERT OR REPLACE INTO deleted(id, generation) "
                             "VALUES(?, (SELECT CAST(value AS INTEGER) + 1 FROM meta WHERE key = 'generation'))"));
    for (const auto& path : paths) {
        sqlite3_reset(find);
        sqlite3_bind_text(find, 1, path.c_str(), static_cast<int>(path.size()), SQLITE_TRANSIENT);
        if (sqlite3_step(find) != SQLITE_ROW) continue;
        const int64_t id = sqlite3_column_int64(find, 0);
        for (sqlite3_stmt* stmt : {static_cast<sqlite3_stmt*>(erase), static_cast<sqlite3_stmt*>(record)}) {
            sqlite3_reset(stmt);
            sqlite3_bind_int64(stmt, 1, id);
            if (sqlite3_step(stmt) != SQLITE_DONE) throw Error(file_.string() + ": cannot delete row: " + sqlite3_errmsg(db_));
        }
        removed.push_back(id);
        changed_in_transaction_ = true;
    }
    return removed;
}

std::vector<int64_t> Catalogue::deleted_since(uint64_t generation) const {
    std::vector<int64_t> out;
    Statement stmt(prepare("SELECT id FROM deleted WHERE generation > ? ORDER BY id"));
    sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(generation));
    while (sqlite3_step(stmt) == SQLITE_ROW) out.push_back(sqlite3_column_int64(stmt, 0));
    return out;
}

std::optional<ImageRecord> Catalogue::find_by_sha256(const std::string& sha256) const {
    Statement stmt(prepare("SELECT path FROM images WHERE sha256 = ? ORDER BY id LIMIT 1"));
    sqlite3_bind_text(stmt, 1, sha256.c_str(), static_cast<int>(sha256.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_ROW) return std::nullopt;
    return find_by_path(column_text(stmt, 0));
}

void Catalogue::move_row(int64_t id, const std::string& path, int64_t size, int64_t mtime_ns) {
    Statement stmt(prepare("UPDATE images SET path = ?, size = ?, mtime_ns = ? WHERE id = ?"));
    sqlite3_bind_text(stmt, 1, path.c_str(), static_cast<int>(path.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, size);
    sqlite3_bind_int64(stmt, 3, mtime_ns);
    sqlite3_bind_int64(stmt, 4, id);
    if (sqlite3_step(stmt) != SQLITE_DONE) throw Error(file_.string() + ": cannot move row: " + sqlite3_errmsg(db_));
}

std::vector<std::pair<int64_t, std::string>> Catalogue::all_paths() const {
    std::vector<std::pair<int64_t, std::string>> out;
    Statement stmt(prepare("SELECT id, path FROM images ORDER BY id"));
    while (sqlite3_step(stmt) == SQLITE_ROW) out.emplace_back(sqlite3_column_int64(stmt, 0), column_text(stmt, 1));
    return out;
}

std::vector<std::string> Catalogue::integrity_check() const {
    Statement stmt(prepare("PRAGMA integrity_check"));
    std::vector<std::string> out;
    while (sqlite3_step(stmt) == SQLITE_ROW) out.push_back(column_text(stmt, 0));
    return out;
}

size_t Catalogue::rows_with_wrong_dimension(int dimension) const {
    Statement stmt(prepare("SELECT count(*) FROM images WHERE length(vector) != ?"));
    sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(dimension) * 4);
    sqlite3_step(stmt);
    return static_cast<size_t>(sqlite3_column_int64(stmt, 0));
}

void Catalogue::vectors_of(const std::vector<int64_t>& ids, int dimension, std::vector<float>& out) const {
    out.assign(ids.size() * static_cast<size_t>(dimension), std::numeric_limits<float>::quiet_NaN());
    Statement stmt(prepare("SELECT vector FROM images WHERE id = ?"));
    for (size_t i = 0; i < ids.size(); ++i) {
        sqlite3_reset(stmt);
        sqlite3_bind_int64(stmt, 1, ids[i]);
        if (sqlite3_step(stmt) != SQLITE_ROW) continue;
        if (sqlite3_column_bytes(stmt, 0) != dimension * static_cast<int>(sizeof(float))) continue;
        std::memcpy(&out[i * dimension], sqlite3_column_blob(stmt, 0), dimension * sizeof(float));
    }
}

void Catalogue::all_vectors(int dimension, std::vector<int64_t>& ids, std::vector<float>& vectors) const {
    for_each_vector_since(0, [&](int64_t id, const float* v, int d) {
        if (d != dimension) return;
        ids.push_back(id);
        vectors.insert(vectors.end(), v, v + d);
    });
}

void Catalogue::for_each_vector_since(uint64_t generation,
                                      const std::function<void(int64_t, const float*, int)>& visit) const {
    Statement stmt(prepare("SELECT id, vector FROM images WHERE generation > ? ORDER BY id"));
    sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(generation));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const auto* blob = static_cast<const float*>(sqlite3_column_blob(stmt, 1));
        visit(sqlite3_column_int64(stmt, 0), blob, sqlite3_column_bytes(stmt, 1) / static_cast<int>(sizeof(float)));
    }
    if (rc != SQLITE_DONE) throw Error(file_.string() + ": catalogue read error: " + sqlite3_errmsg(db_));
}

}  // namespace cbir
