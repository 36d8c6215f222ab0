#include "serve/catalogued_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "serve/search_service.h"
#include "util/hash.h"

namespace cbir {
namespace {

class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() {
        if (fd_ >= 0) ::close(fd_);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

[[noreturn]] void gone(const ImageRecord& record, const std::string& what) {
    throw RequestError(410, fmt::format("{}: {}; not served (cbir index brings the store up to date, cbir prune "
                                        "drops rows whose files are gone)",
                                        record.path, what));
}

}  // namespace

std::string read_catalogued_file(const ImageRecord& record) {
    // Symlinks are followed as the indexer followed them: what decides is what was opened. O_NONBLOCK:
    // opening a FIFO put in the file's place must not wait for a writer.
    FileDescriptor file(::open(record.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (file.get() < 0) gone(record, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(file.get(), &st) != 0) gone(record, std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) gone(record, "no longer a regular file");
    const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (st.st_size != record.size || mtime_ns != record.mtime_ns)
        gone(record, "changed since it was catalogued (its size or modification time differ)");

    std::string bytes(static_cast<size_t>(record.size), '\0');
    size_t got = 0;
    while (got < bytes.size()) {
        const ssize_t n = ::read(file.get(), bytes.data() + got, bytes.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) gone(record, std::string("read error: ") + std::strerror(errno));
        if (n == 0) gone(record, "shorter than when it was catalogued");
        got += static_cast<size_t>(n);
    }
    if (sha256_hex(bytes.data(), bytes.size()) != record.sha256)
        gone(record, "its content differs from what was catalogued (sha256)");
    return bytes;
}

}  // namespace cbir
