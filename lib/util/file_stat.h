#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>

namespace cbir {

struct FileStat {
    int64_t size = 0;
    int64_t mtime_ns = 0;
};

// stat(2) with nanosecond mtime; nullopt if the file cannot be stat'ed.
std::optional<FileStat> stat_file(const std::filesystem::path& path);

// Which file a path names now (device and inode): tells a file replaced under the same name.
struct FileIdentity {
    uint64_t device = 0;
    uint64_t inode = 0;
    bool operator==(const FileIdentity& other) const { return device == other.device && inode == other.inode; }
};
std::optional<FileIdentity> file_identity(const std::filesystem::path& path);

}  // namespace cbir
