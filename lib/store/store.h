#pragma once
// A store is a directory (default ".cbir", found upward from the working directory as git finds
// ".git") holding the catalogue (catalogue.sqlite, the source of truth) and derived index files.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "embed/precision.h"
#include "index/index_spec.h"
#include "index/metric.h"
#include "store/catalogue.h"
#include "util/file_stat.h"

namespace cbir {

inline constexpr int kStoreFormatVersion = 1;
inline constexpr const char* kDefaultStoreDirName = ".cbir";

struct StoreSettings {
    std::string model_path;  // absolute path of the model that built the store
    std::string model_sha256;
    int64_t model_size = 0;
    int64_t model_mtime_ns = 0;
    // With size and mtime, lets a query skip re-hashing an unchanged model. The change time and inode
    // cannot be set by hand, so a file replaced by another of the same size and mtime is still hashed.
    int64_t model_ctime_ns = 0;
    int64_t model_inode = 0;
    int dimension = 0;
    Metric metric = Metric::L2;
    std::string preprocessing;
    // How the vectors were computed (int8 from a quantized model file, bf16 from how a float model
    // ran). Unset in stores made before it was recorded: fp32, or int8 if their model is quantized.
    std::optional<Precision> precision;
    IndexSpec index;  // kind, build parameters and search defaults
};

class Store {
public:
    // The store a command should use when none is named: the nearest ".cbir" containing a catalogue
    // in the working directory or above it.
    static std::optional<std::filesystem::path> find_upward(const std::filesystem::path& start);
    static bool exists(const std::filesystem::path& dir);

    // Throws cbir::Error (naming the directory, the cause and the repair) if it is not a usable store.
    // Commands that only read open it ReadOnly: they work on a read-only mount or without write
    // permission, and never change the catalogue.
    static std::unique_ptr<Store> open(const std::filesystem::path& dir,
                                       CatalogueAccess access = CatalogueAccess::ReadWrite);
    static std::unique_ptr<Store> create(const std::filesystem::path& dir, const StoreSettings& settings);

    const std::filesystem::path& dir() const { return dir_; }
    Catalogue& catalogue() { return *catalogue_; }
    const StoreSettings& settings() const { return settings_; }
    // The derived index file of the store's kind ("index.hnsw", "index.ivf", "index.ivfpq").
    std::filesystem::path index_file() const { return dir_ / ("index." + index_kind_name(settings_.index.kind)); }
    // Records a new index choice (cbir reindex); the caller rebuilds the index.
    void update_index_settings(const StoreSettings& settings);

    // Records the precision of a store made before precisions were recorded, at its next write.
    void record_precision(Precision precision);
    // Records where the model now is and its file identity (after verifying its hash).
    void update_model_identity(const std::string& path, const FileStat& identity);

    // An index run that began embedding and has not ended: killed, interrupted, or still running
    // ("pid 123, started 2026-11-26 19:04:05 UTC"); empty when there is none. A run records itself
    // before its first batch and clears the record when it ends uninterrupted, so a shard whose task
    // died midway is not taken for a complete one.
    std::string unfinished_index_run() const;
    void record_index_run_started();
    void record_index_run_finished();

private:
    Store(std::filesystem::path dir, std::unique_ptr<Catalogue> catalogue, StoreSettings settings);
    std::filesystem::path dir_;
    std::unique_ptr<Catalogue> catalogue_;
    StoreSettings settings_;
};

std::filesystem::path catalogue_file(const std::filesystem::path& store_dir);

// The command line of `cbir ARGUMENTS` acting on this store, as a user would type it here: with
// `--store DIR` unless the store is the one cbir finds from the working directory. Every hint that
// names a command (repair, reindex, remove, index) is rendered by it, so none acts on another store.
std::string store_command(const std::filesystem::path& store_dir, const std::string& arguments);

}  // namespace cbir
