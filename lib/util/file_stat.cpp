#include "util/file_stat.h"

#include <sys/stat.h>

namespace cbir {

FileStat file_stat_of(const struct stat& st) {
    return FileStat{static_cast<int64_t>(st.st_size),
                    static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                    static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec,
                    static_cast<int64_t>(st.st_ino),
                    static_cast<int64_t>(st.st_dev)};
}

std::optional<FileStat> stat_file(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return file_stat_of(st);
}

uint64_t file_size_or_zero(const std::filesystem::path& path) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    return ec ? 0 : static_cast<uint64_t>(size);
}

}  // namespace cbir
