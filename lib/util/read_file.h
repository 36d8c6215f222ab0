#pragma once
// Reading files into memory with bounds: only regular files are read (a device or a FIFO named like
// an image must not block a thread or stream forever), and never past a limit the caller sets from
// the file's size before reading (image/image_file.h does this for images).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "util/file_stat.h"

namespace cbir {

// An open regular file. Its stat comes from the open descriptor (fstat), so it describes the bytes
// that are read, not whatever the path names a moment later.
class RegularFile {
public:
    // Fails with `error` set ("cannot open: …", "not a regular file") without reading anything.
    static std::optional<RegularFile> open(const std::filesystem::path& path, std::string& error);
    RegularFile(RegularFile&& other) noexcept;
    RegularFile& operator=(RegularFile&&) = delete;
    RegularFile(const RegularFile&) = delete;
    ~RegularFile();

    const FileStat& stat() const { return stat_; }
    // Appends to `out` until it holds `limit` bytes or the file ends; false with `error` on a read error.
    bool read_until(std::string& out, size_t limit, std::string& error);

private:
    RegularFile(int fd, FileStat stat) : fd_(fd), stat_(stat) {}
    int fd_ = -1;
    FileStat stat_;
};

// "file of N bytes is larger than the M allowed"
std::string file_too_large_message(uint64_t size, uint64_t max_bytes);

}  // namespace cbir
