#include "store/writer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "store/store.h"
#include "util/error.h"

namespace cbir {

std::filesystem::path writer_lock_file(const std::filesystem::path& store_dir) { return store_dir / "lock"; }

WriterLock::WriterLock(const std::filesystem::path& store_dir) {
    // The folder is not created here: a command pointed at a store that does not exist must not
    // leave an empty one behind (the indexer creates a new store's folder itself).
    if (!std::filesystem::is_directory(store_dir))
        throw Error(store_dir.string() + ": no cbir store here; create one with '" + store_command(store_dir, "index DIR") +
                    "'");
    const auto path = writer_lock_file(store_dir);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(path.string() + ": cannot open the store's lock file: " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        char holder[32] = {0};
        const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
        ::close(fd_);
        fd_ = -1;
        throw Error(store_dir.string() + ": another cbir (pid " + std::string(holder, n > 0 ? size_t(n) : 0) +
                    ") is writing to this store; wait for it to finish, or stop it");
    }
    const std::string pid = std::to_string(::getpid());
    if (::ftruncate(fd_, 0) == 0) {
        [[maybe_unused]] ssize_t written = ::pwrite(fd_, pid.data(), pid.size(), 0);
    }
}

WriterLock::~WriterLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace cbir
