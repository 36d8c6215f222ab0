#include "serve/local_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "util/error.h"

namespace cbir {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text() { return std::strerror(errno); }

// The socket's address through the folder's descriptor: short whatever the store's path.
sockaddr_un address_in(int folder_fd) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "/proc/self/fd/%d/%s", folder_fd, kLocalSocketName);
    return address;
}

bool reachable_by_others(const struct stat& st) { return (st.st_mode & 077) != 0; }

// Largest answer taken from a server: a search answer of 10,000 hits is about 2 MB.
constexpr size_t kMaxReplyBytes = 64u << 20;

// Waits for `events` on the socket until the deadline; false when it passed.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, INT_MAX)));
        if (ready > 0) return true;
        if (ready < 0 && errno != EINTR) return false;
    }
}

class Descriptor {
public:
    explicit Descriptor(int fd) : fd_(fd) {}
    ~Descriptor() {
        if (fd_ >= 0) ::close(fd_);
    }
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;
    int get() const { return fd_; }
    int release() {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }

private:
    int fd_;
};

}  // namespace

std::filesystem::path local_socket_path(const std::filesystem::path& store_dir) {
    return store_dir / kLocalSocketFolder / kLocalSocketName;
}

bool peer_is_same_user(int socket) {
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0 || length != sizeof credentials)
        return false;
    return credentials.uid == ::geteuid();
}

std::unique_ptr<LocalSocketListener> LocalSocketListener::create(const std::filesystem::path& store_dir) {
    std::unique_ptr<LocalSocketListener> listener(new LocalSocketListener());
    listener->path_ = local_socket_path(store_dir);
    const std::filesystem::path folder = store_dir / kLocalSocketFolder;
    // Made 0700 (the umask can only take bits away), or, when it exists, checked to be this user's and
    // closed to others before the socket appears in it.
    if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST)
        throw Error(fmt::format("{}: cannot create the folder ({})", folder.string(), errno_text()));
    listener->folder_fd_ = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (listener->folder_fd_ < 0) throw Error(fmt::format("{}: cannot open the folder ({})", folder.string(), errno_text()));
    struct stat st {};
    if (::fstat(listener->folder_fd_, &st) != 0 || st.st_uid != ::geteuid())
        throw Error(fmt::format("{}: the folder belongs to another user", folder.string()));
    if (reachable_by_others(st) && ::fchmod(listener->folder_fd_, 0700) != 0)
        throw Error(fmt::format("{}: cannot make the folder private ({})", folder.string(), errno_text()));

    struct stat existing {};
    if (::fstatat(listener->folder_fd_, kLocalSocketName, &existing, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISSOCK(existing.st_mode))
            throw Error(fmt::format("{}: exists and is not a socket (remove it)", listener->path_.string()));
        // Left by a server that was killed: this one holds the store's writer lock, so no other serves it.
        if (::unlinkat(listener->folder_fd_, kLocalSocketName, 0) != 0)
            throw Error(fmt::format("{}: cannot remove the old socket ({})", listener->path_.string(), errno_text()));
    }

    Descriptor fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw Error(fmt::format("cannot create a Unix socket ({})", errno_text()));
    const sockaddr_un address = address_in(listener->folder_fd_);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        throw Error(fmt::format("{}: cannot bind ({})", listener->path_.string(), errno_text()));
    struct stat bound {};
    if (::fchmodat(listener->folder_fd_, kLocalSocketName, 0600, 0) != 0 ||
        ::fstatat(listener->folder_fd_, kLocalSocketName, &bound, AT_SYMLINK_NOFOLLOW) != 0) {
        const std::string cause = errno_text();
        ::unlinkat(listener->folder_fd_, kLocalSocketName, 0);
        throw Error(fmt::format("{}: cannot set the socket's mode ({})", listener->path_.string(), cause));
    }
    listener->device_ = bound.st_dev;
    listener->inode_ = bound.st_ino;
    if (::listen(fd.get(), SOMAXCONN) != 0) {
        listener->remove();
        throw Error(fmt::format("{}: cannot listen ({})", listener->path_.string(), errno_text()));
    }
    listener->listen_fd_ = fd.release();
    return listener;
}

LocalSocketListener::~LocalSocketListener() {
    remove();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (folder_fd_ >= 0) ::close(folder_fd_);
}

int LocalSocketListener::take_descriptor() {
    const int fd = listen_fd_;
    listen_fd_ = -1;
    return fd;
}

void LocalSocketListener::remove() {
    if (folder_fd_ < 0 || inode_ == 0 || removed_.exchange(true)) return;
    struct stat st {};
    // Only this listener's socket: not one a later server made at the same name.
    if (::fstatat(folder_fd_, kLocalSocketName, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == device_ &&
        st.st_ino == inode_)
        ::unlinkat(folder_fd_, kLocalSocketName, 0);
}

std::optional<LocalServerClient> LocalServerClient::open(const std::filesystem::path& store_dir, std::string& why) {
    const std::filesystem::path folder = store_dir / kLocalSocketFolder;
    const std::filesystem::path path = local_socket_path(store_dir);
    Descriptor fd(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
        why = errno == ENOENT ? "no server socket" : fmt::format("{}: {}", folder.string(), errno_text());
        return std::nullopt;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || st.st_uid != ::geteuid() || reachable_by_others(st)) {
        why = fmt::format("{}: not used: the folder is another user's or open to others", folder.string());
        return std::nullopt;
    }
    if (::fstatat(fd.get(), kLocalSocketName, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        why = errno == ENOENT ? "no server socket" : fmt::format("{}: {}", path.string(), errno_text());
        return std::nullopt;
    }
    if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid() || reachable_by_others(st)) {
        why = fmt::format("{}: not used: not a socket, another user's, or open to others", path.string());
        return std::nullopt;
    }
    return LocalServerClient(path, fd.release());
}

LocalServerClient::LocalServerClient(LocalServerClient&& other) noexcept
    : path_(std::move(other.path_)), folder_fd_(other.folder_fd_) {
    other.folder_fd_ = -1;
}

LocalServerClient::~LocalServerClient() {
    if (folder_fd_ >= 0) ::close(folder_fd_);
}

LocalReply LocalServerClient::post(const std::string& target, const std::string& content_type, const std::string& body,
                                   double timeout_seconds) const {
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_seconds));
    Descriptor fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) throw Error(fmt::format("cannot create a Unix socket ({})", errno_text()));
    const sockaddr_un address = address_in(folder_fd_);
    // A socket without a server refuses at once (ECONNREFUSED); a full backlog is a busy server (EAGAIN).
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        throw Error(errno == EAGAIN ? std::string("the server is busy (its connection queue is full)")
                                    : fmt::format("cannot connect ({})", errno_text()));
    if (!peer_is_same_user(fd.get())) throw Error("the server runs as another user");

    const std::string request = fmt::format(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        target, content_type, body.size());
    for (const std::string* part : {&request, &body}) {
        size_t sent = 0;
        while (sent < part->size()) {
            const ssize_t n = ::send(fd.get(), part->data() + sent, part->size() - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += static_cast<size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (!wait_for(fd.get(), POLLOUT, deadline)) throw Error("the server did not take the request in time");
            } else {
                throw Error(fmt::format("the connection failed ({})", errno_text()));
            }
        }
    }

    // Connection: close, so the answer ends where the stream does.
    std::string reply;
    char buffer[65536];
    for (;;) {
        const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
        if (n > 0) {
            reply.append(buffer, static_cast<size_t>(n));
            if (reply.size() > kMaxReplyBytes) throw Error("the server's answer is too large");
        } else if (n == 0) {
            break;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_for(fd.get(), POLLIN, deadline))
                throw Error(fmt::format("the server did not answer within {} s (busy)", timeout_seconds));
        } else {
            throw Error(fmt::format("the connection failed ({})", errno_text()));
        }
    }

    const size_t head_end = reply.find("\r\n\r\n");
    if (reply.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || reply.size() < 12)
        throw Error("the server's answer is not HTTP");
    LocalReply out;
    out.status = std::atoi(reply.c_str() + 9);
    std::string head = reply.substr(0, head_end);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.body = reply.substr(head_end + 4);
    const size_t length_at = head.find("\r\ncontent-length:");
    if (length_at == std::string::npos ||
        std::strtoull(head.c_str() + length_at + 17, nullptr, 10) != out.body.size())
        throw Error("the server's answer was cut short");
    return out;
}

}  // namespace cbir
