#include "util/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/error.h"
#include "util/fd_io.h"

namespace cbir {
namespace {

// Errors name the file the caller asked for, never the temporary one beside it: that is a detail
// of how it is written, and gone by the time the user reads the message.
[[noreturn]] void fail(const std::filesystem::path& target, const char* what) {
    throw Error(target.string() + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path target) : target_(std::move(target)) {
    temp_ = target_;
    // pid and a per-process counter: two threads of a server may write the same target at once.
    static std::atomic<unsigned> next_temp{0};
    temp_ += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(next_temp.fetch_add(1));
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(target_, "cannot create");
}

AtomicFileWriter::~AtomicFileWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
    if (!write_fully(fd_, data, size)) fail(target_, "write failed");
}

void AtomicFileWriter::write_at(uint64_t offset, const void* data, size_t size) {
    if (!write_fully_at(fd_, offset, data, size)) fail(target_, "write failed");
}

void AtomicFileWriter::commit() {
    if (::fsync(fd_) != 0) fail(target_, "fsync failed");
    if (::close(fd_) != 0) {
        fd_ = -1;
        fail(target_, "close failed");
    }
    fd_ = -1;
    if (::rename(temp_.c_str(), target_.c_str()) != 0) fail(target_, "cannot rename temporary file into place");
    committed_ = true;
    sync_directory(target_.parent_path().empty() ? "." : target_.parent_path());
}

void sync_directory(const std::filesystem::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;  // best effort: some file systems refuse to open directories
    ::fsync(fd);
    ::close(fd);
}

std::vector<std::filesystem::path> abandoned_temporary_files(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        const size_t at = name.rfind(".tmp-");
        if (at == std::string::npos) continue;
        const std::string rest = name.substr(at + 5);  // "<pid>-<n>"
        const size_t dash = rest.find('-');
        if (dash == 0 || dash == std::string::npos || rest.find_first_not_of("0123456789-") != std::string::npos) continue;
        const long pid = std::strtol(rest.c_str(), nullptr, 10);
        if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace cbir
