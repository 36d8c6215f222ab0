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

}  // namespace cbir
