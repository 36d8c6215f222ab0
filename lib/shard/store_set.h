#pragma once
// A store set: S ordinary cbir stores (the shards, each crash-safe, checkable and queryable on its
// own) in one folder, with a small manifest (set.json) that says how many shards there are and how an
// image is placed. An image's shard is a stable hash of its path relative to the set's root, so adding
// files never moves others, a moved file's shard is computable, and inserts and deletes route by the
// same rule (as Milvus routes by primary key). S is fixed when the set is made; shards are never merged.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "index/index_spec.h"
#include "index/metric.h"
#include "store/store.h"

namespace cbir {

inline constexpr const char* kSetManifestName = "set.json";
inline constexpr int kMaxShards = 4096;
// A global id is the shard in the high 16 bits and the shard's catalogue row id in the low 48, so
// ids are stable (a row keeps its id) and unique across the set.
inline constexpr int kShardIdShift = 48;

struct SetManifest {
    int shards = 0;
    // Image paths are hashed relative to this folder (absolute); paths outside it hash whole.
    std::string root;
    std::string model_path;
    std::string model_sha256;
    Metric metric = Metric::L2;
    IndexSpec index;
};

class StoreSet {
public:
    // Whether `dir` holds a set manifest (as opposed to a single store, or nothing).
    static bool exists(const std::filesystem::path& dir);
    // Reads the manifest; throws cbir::Error naming the file and the cause.
    static StoreSet open(const std::filesystem::path& dir);
    // Creates the set, or joins the one that concurrent tasks (a job array, MPI ranks) created at
    // the same moment: the first manifest written wins, atomically, and a later one must agree with
    // it (shards, root, model, metric, index), else cbir::Error.
    static StoreSet create_or_join(const std::filesystem::path& dir, const SetManifest& wanted);

    const std::filesystem::path& dir() const { return dir_; }
    const SetManifest& manifest() const { return manifest_; }
    int shards() const { return manifest_.shards; }
    std::filesystem::path shard_dir(int shard) const;
    // The shard of a catalogue key (an absolute, normal path): SHA-256 of the path relative to the
    // root (or of the whole path outside it), its first 8 bytes big-endian, modulo S.
    // A file uploaded to `cbir serve` (stored in its shard's uploads/ under its content's SHA-256) is
    // placed by that SHA-256 instead: shard_of_upload.
    int shard_of(const std::string& catalogue_key) const;
    int shard_of_upload(const std::string& content_sha256) const;
    // Why a shard's store cannot belong to this set (another metric or model), or empty.
    std::string shard_disagreement(const StoreSettings& shard) const;
    // Records a new index choice (cbir reindex, after every shard is rebuilt), atomically.
    void update_index(const IndexSpec& index);

private:
    StoreSet(const std::filesystem::path& dir, SetManifest manifest);
    std::filesystem::path dir_;
    SetManifest manifest_;
};

// The placement rule on its own, for tests and tools that have no set open.
int shard_of_key(const std::string& catalogue_key, const std::string& root, int shards);

inline int64_t global_id(int shard, int64_t row_id) { return (int64_t(shard) << kShardIdShift) | row_id; }
inline int shard_of_global_id(int64_t id) { return int(id >> kShardIdShift); }
inline int64_t row_of_global_id(int64_t id) { return id & ((int64_t(1) << kShardIdShift) - 1); }

// The shards that task `task` of `tasks` fills: task, task + tasks, task + 2 tasks, …
std::vector<int> shards_of_task(int shards, int task, int tasks);

}  // namespace cbir

namespace cbir {
// What `cbir info` reports about a set: the manifest, the images in all, and each shard's count
// (or that it has no store yet).
std::vector<std::pair<std::string, std::string>> describe_set(const StoreSet& set);
}  // namespace cbir
