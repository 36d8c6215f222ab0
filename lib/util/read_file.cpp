#include "util/read_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cbir {

std::optional<RegularFile> RegularFile::open(const std::filesystem::path& path, std::string& error) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. It changes nothing
    // for a regular file, the only kind that is read.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        error = std::string("cannot open: ") + std::strerror(errno);
        return std::nullopt;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        error = std::string("cannot stat: ") + std::strerror(errno);
        ::close(fd);
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        error = "not a regular file";
        ::close(fd);
        return std::nullopt;
    }
    return RegularFile(fd, file_stat_of(st));
}

RegularFile::RegularFile(RegularFile&& other) noexcept : fd_(other.fd_), stat_(other.stat_) { other.fd_ = -1; }

RegularFile::~RegularFile() {
    if (fd_ >= 0) ::close(fd_);
}

bool RegularFile::read_until(std::string& out, size_t limit, std::string& error) {
    if (out.size() >= limit) return true;
    // Sized from the file's length so that a large file is not copied through doubling buffers.
    const size_t expected = static_cast<size_t>(std::max<int64_t>(stat_.size, 0));
    out.reserve(std::min(limit, std::max(out.size(), expected)));
    char chunk[1 << 16];
    while (out.size() < limit) {
        const size_t want = std::min(sizeof chunk, limit - out.size());
        const ssize_t n = ::read(fd_, chunk, want);
        if (n < 0) {
            if (errno == EINTR) continue;
            error = std::string("read error: ") + std::strerror(errno);
            return false;
        }
        if (n == 0) break;
        out.append(chunk, static_cast<size_t>(n));
    }
    return true;
}

std::string file_too_large_message(uint64_t size, uint64_t max_bytes) {
    return "file of " + std::to_string(size) + " bytes is larger than the " + std::to_string(max_bytes) + " allowed";
}

}  // namespace cbir
