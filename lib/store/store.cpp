#include "store/store.h"

#include <unistd.h>

#include <ctime>

#include <fmt/format.h>

#include "util/error.h"

namespace cbir {
namespace {

std::string required(const Catalogue& c, const std::string& key) {
    auto value = c.meta(key);
    if (!value)
        throw Error(c.file().string() + ": catalogue metadata '" + key +
                    "' is missing; the store is damaged (remove the store directory and run 'cbir index' again)");
    return *value;
}

void write_settings(Catalogue& c, const StoreSettings& s) {
    c.set_meta("format_version", std::to_string(kStoreFormatVersion));
    c.set_meta("model_path", s.model_path);
    c.set_meta("model_sha256", s.model_sha256);
    c.set_meta("model_size", std::to_string(s.model_size));
    c.set_meta("model_mtime_ns", std::to_string(s.model_mtime_ns));
    c.set_meta("model_ctime_ns", std::to_string(s.model_ctime_ns));
    c.set_meta("model_inode", std::to_string(s.model_inode));
    c.set_meta("dimension", std::to_string(s.dimension));
    c.set_meta("metric", metric_name(s.metric));
    c.set_meta("preprocessing", s.preprocessing);
    if (s.precision) c.set_meta("precision", precision_name(*s.precision));
    c.set_meta("index_kind", index_kind_name(s.index.kind));
    c.set_meta("hnsw_m", std::to_string(s.index.hnsw_m));
    c.set_meta("hnsw_ef_construction", std::to_string(s.index.hnsw_ef_construction));
    c.set_meta("hnsw_ef_search", std::to_string(s.index.hnsw_ef_search));
    c.set_meta("ivf_nlist", std::to_string(s.index.ivf_nlist));
    c.set_meta("ivf_nprobe", std::to_string(s.index.ivf_nprobe));
    c.set_meta("pq_m", std::to_string(s.index.pq_m));
    c.set_meta("pq_bits", std::to_string(s.index.pq_bits));
}

int optional_int(const Catalogue& c, const std::string& key, int fallback) {
    auto value = c.meta(key);
    return value ? std::stoi(*value) : fallback;  // keys added after format 1 first shipped
}

int64_t optional_int64(const Catalogue& c, const std::string& key) {
    auto value = c.meta(key);
    return value ? std::stoll(*value) : 0;
}

StoreSettings read_settings(const Catalogue& c) {
    const int version = std::stoi(required(c, "format_version"));
    if (version > kStoreFormatVersion)
        throw Error(c.file().string() + ": store format version " + std::to_string(version) +
                    " is newer than this cbir supports (" + std::to_string(kStoreFormatVersion) + "); upgrade cbir");
    StoreSettings s;
    s.model_path = required(c, "model_path");
    s.model_sha256 = required(c, "model_sha256");
    s.model_size = std::stoll(required(c, "model_size"));
    s.model_mtime_ns = std::stoll(required(c, "model_mtime_ns"));
    s.model_ctime_ns = optional_int64(c, "model_ctime_ns");
    s.model_inode = optional_int64(c, "model_inode");
    s.dimension = std::stoi(required(c, "dimension"));
    auto metric = parse_metric(required(c, "metric"));
    if (!metric) throw Error(c.file().string() + ": unknown metric in store metadata");
    s.metric = *metric;
    s.preprocessing = required(c, "preprocessing");
    if (auto precision = c.meta("precision")) {
        s.precision = parse_precision_name(*precision);
        if (!s.precision) throw Error(c.file().string() + ": unknown precision '" + *precision + "' in store metadata");
    }
    const std::string kind = required(c, "index_kind");
    if (auto parsed = parse_index_kind(kind))
        s.index.kind = *parsed;
    else
        throw Error(c.file().string() + ": unknown index kind '" + kind + "' in store metadata");
    s.index.hnsw_m = std::stoi(required(c, "hnsw_m"));
    s.index.hnsw_ef_construction = std::stoi(required(c, "hnsw_ef_construction"));
    s.index.hnsw_ef_search = std::stoi(required(c, "hnsw_ef_search"));
    s.index.ivf_nlist = optional_int(c, "ivf_nlist", s.index.ivf_nlist);
    s.index.ivf_nprobe = optional_int(c, "ivf_nprobe", s.index.ivf_nprobe);
    s.index.pq_m = optional_int(c, "pq_m", s.index.pq_m);
    s.index.pq_bits = optional_int(c, "pq_bits", s.index.pq_bits);
    return s;
}

}  // namespace

std::filesystem::path catalogue_file(const std::filesystem::path& store_dir) { return store_dir / "catalogue.sqlite"; }

namespace {

// Single quotes when the shell would split or expand the text.
std::string shell_word(const std::string& text) {
    if (!text.empty() && text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=./:,@%") ==
                             std::string::npos)
        return text;
    std::string quoted = "'";
    for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

}  // namespace

std::string store_command(const std::filesystem::path& store_dir, const std::string& arguments) {
    std::string command = "cbir " + arguments;
    std::error_code ec;
    const std::filesystem::path cwd = std::filesystem::current_path(ec);
    const std::filesystem::path dir = std::filesystem::absolute(store_dir, ec).lexically_normal();
    if (!ec && Store::find_upward(cwd) == dir) return command;
    std::filesystem::path shown = dir.lexically_relative(cwd);
    if (ec || shown.empty() || *shown.begin() == "..") shown = dir;
    return command + " --store " + shell_word(shown.string());
}

bool Store::exists(const std::filesystem::path& dir) {
    std::error_code ec;
    return std::filesystem::is_regular_file(catalogue_file(dir), ec);
}

std::optional<std::filesystem::path> Store::find_upward(const std::filesystem::path& start) {
    std::filesystem::path dir = std::filesystem::absolute(start).lexically_normal();
    for (;;) {
        if (exists(dir / kDefaultStoreDirName)) return dir / kDefaultStoreDirName;
        if (!dir.has_parent_path() || dir.parent_path() == dir) return std::nullopt;
        dir = dir.parent_path();
    }
}

Store::Store(std::filesystem::path dir, std::unique_ptr<Catalogue> catalogue, StoreSettings settings)
    : dir_(std::move(dir)), catalogue_(std::move(catalogue)), settings_(std::move(settings)) {}

std::unique_ptr<Store> Store::open(const std::filesystem::path& dir, CatalogueAccess access) {
    if (!exists(dir))
        throw Error(dir.string() + ": no cbir store here (no catalogue.sqlite); create one with '" +
                    store_command(dir, "index DIR") + "'");
    auto catalogue = std::make_unique<Catalogue>(catalogue_file(dir), access);
    StoreSettings settings;
    try {
        settings = read_settings(*catalogue);
    } catch (const std::invalid_argument&) {
        throw Error(catalogue->file().string() + ": store metadata is damaged (a number does not parse)");
    } catch (const std::out_of_range&) {
        throw Error(catalogue->file().string() + ": store metadata is damaged (a number is out of range)");
    }
    return std::unique_ptr<Store>(new Store(dir, std::move(catalogue), settings));
}

std::unique_ptr<Store> Store::create(const std::filesystem::path& dir, const StoreSettings& settings) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw Error(dir.string() + ": cannot create store directory: " + ec.message());
    auto catalogue = std::make_unique<Catalogue>(catalogue_file(dir), CatalogueAccess::Create);
    {
        Transaction txn(*catalogue);
        write_settings(*catalogue, settings);
        txn.commit();
    }
    return std::unique_ptr<Store>(new Store(dir, std::move(catalogue), settings));
}

void Store::update_index_settings(const StoreSettings& settings) {
    Transaction txn(*catalogue_);
    write_settings(*catalogue_, settings);
    txn.commit();
    settings_ = settings;
}

void Store::record_precision(Precision precision) {
    Transaction txn(*catalogue_);
    catalogue_->set_meta("precision", precision_name(precision));
    txn.commit();
    settings_.precision = precision;
}

namespace {
constexpr const char* kUnfinishedRunKey = "unfinished_index_run";
}

std::string Store::unfinished_index_run() const { return catalogue_->meta(kUnfinishedRunKey).value_or(""); }

void Store::record_index_run_started() {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &utc);
    catalogue_->set_meta(kUnfinishedRunKey, fmt::format("pid {}, started {}", ::getpid(), when));
}

void Store::record_index_run_finished() {
    if (!unfinished_index_run().empty()) catalogue_->set_meta(kUnfinishedRunKey, "");
}

void Store::update_model_identity(const std::string& path, const FileStat& identity) {
    if (catalogue_->read_only()) return;  // it is hashed again next time
    Transaction txn(*catalogue_);
    catalogue_->set_meta("model_path", path);
    catalogue_->set_meta("model_size", std::to_string(identity.size));
    catalogue_->set_meta("model_mtime_ns", std::to_string(identity.mtime_ns));
    catalogue_->set_meta("model_ctime_ns", std::to_string(identity.ctime_ns));
    catalogue_->set_meta("model_inode", std::to_string(identity.inode));
    txn.commit();
    settings_.model_path = path;
    settings_.model_size = identity.size;
    settings_.model_mtime_ns = identity.mtime_ns;
    settings_.model_ctime_ns = identity.ctime_ns;
    settings_.model_inode = identity.inode;
}

}  // namespace cbir
