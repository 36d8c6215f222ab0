#include "store/writer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "store/store.h"
#include "util/error.h"

namespace cbir {

namespace {

// The command (index, serve, …) of the cbir process `pid`, from its command line; empty when unknown.
std::string cbir_command_of(const std::string& pid) {
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) return {};
    std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
    std::string argument;
    bool first = true;
    while (std::getline(in, argument, '\0')) {
        if (first) {  // the program: cbir, cbir-index or cbir-query
            first = false;
            const std::string program = std::filesystem::path(argument).filename().string();
            if (program == "cbir-index") return "index";
            if (program == "cbir-query") return "query";
            if (program != "cbir") return {};  // the pid was reused, or cbir runs under another name
            continue;
        }
        if (!argument.empty() && argument[0] != '-') return argument;
    }
    return {};
}

}  // namespace

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
        const std::string pid(holder, n > 0 ? size_t(n) : 0);
        const std::string command = cbir_command_of(pid);
        if (command == "serve")
            throw Error(store_dir.string() + ": a cbir serve (pid " + pid +
                        ") holds this store; add or remove images through it (POST /images, DELETE /images/ID, its "
                        "web page), or stop it first");
        throw Error(store_dir.string() + ": another cbir (pid " + pid + (command.empty() ? "" : ", cbir " + command) +
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
