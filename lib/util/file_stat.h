#pragma once
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <optional>

namespace cbir {

struct FileStat {
    int64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;  // set by the kernel on any change; cannot be set by hand
    int64_t inode = 0;
    int64_t device = 0;
    // Same file, unchanged: what a cached hash of it may be trusted by (the model's record in a store
    // has no device).
    bool same_file_as(const FileStat& other) const {
        return size == other.size && mtime_ns == other.mtime_ns && ctime_ns == other.ctime_ns && inode == other.inode;
    }
    // The same file, whatever was written to it: a file replaced under the same name is another one.
    bool same_inode_as(const FileStat& other) const { return device == other.device && inode == other.inode; }
};

// stat(2) with nanosecond mtime; nullopt if the file cannot be stat'ed.
std::optional<FileStat> stat_file(const std::filesystem::path& path);
// The same from a stat(2) or fstat(2) result.
FileStat file_stat_of(const struct stat& st);

// For reports: the size in bytes, 0 for a file that is not there.
uint64_t file_size_or_zero(const std::filesystem::path& path);

}  // namespace cbir
