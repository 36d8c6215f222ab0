#pragma once
// The Unix socket through which a `cbir serve` holding a store answers the one-shot queries of
// `cbir query` on the same machine (lib/serve/served_query.h), so that they need not load LibTorch.
// It is <store>/serve/query.sock, in a folder of mode 0700, the socket itself 0600, both owned by the
// user who serves; each side checks the other's user id (SO_PEERCRED) before anything is sent.
// The protocol is the HTTP API itself (README "Serving"), one request per connection.
#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace cbir {

inline constexpr const char* kLocalSocketFolder = "serve";
inline constexpr const char* kLocalSocketName = "query.sock";

// <store>/serve/query.sock, for messages (connections go through the folder's descriptor, since a
// socket's path may hold only 107 bytes).
std::filesystem::path local_socket_path(const std::filesystem::path& store_dir);

// Whether the process at the other end of a connected Unix socket runs as this process's user.
bool peer_is_same_user(int socket);

// The server's end: a listening socket, reachable by its user only. The folder is made 0700 before
// the socket is bound in it, so the socket is never reachable by others, not even before its own
// mode is set to 0600. A socket left by a server that was killed is replaced (the store's writer
// lock, held by the server, rules out a live one); anything else at that name is left alone and
// refused.
class LocalSocketListener {
public:
    // Throws cbir::Error naming the path and the cause.
    static std::unique_ptr<LocalSocketListener> create(const std::filesystem::path& store_dir);
    ~LocalSocketListener();  // removes the socket, if the name is still this one's
    LocalSocketListener(const LocalSocketListener&) = delete;
    LocalSocketListener& operator=(const LocalSocketListener&) = delete;

    // The listening descriptor, handed to the server that accepts on it (which closes it).
    int take_descriptor();
    const std::filesystem::path& path() const { return path_; }
    // Removes the socket now (a stopping server): later queries load the model themselves at once.
    void remove();

private:
    LocalSocketListener() = default;
    std::filesystem::path path_;
    int folder_fd_ = -1;
    int listen_fd_ = -1;
    dev_t device_ = 0;
    ino_t inode_ = 0;
    std::atomic<bool> removed_{false};
};

struct LocalReply {
    int status = 0;
    std::string body;
};

// The client's end: a server socket found in a store, trusted only when the folder and the socket
// are this user's and reachable by no one else.
class LocalServerClient {
public:
    // nullopt, with the reason in `why`, when there is no socket or it is not to be trusted.
    static std::optional<LocalServerClient> open(const std::filesystem::path& store_dir, std::string& why);
    LocalServerClient(LocalServerClient&& other) noexcept;
    LocalServerClient& operator=(LocalServerClient&&) = delete;
    ~LocalServerClient();

    // One HTTP request on a new connection (a server that is gone refuses it at once), answered
    // within timeout_seconds; the peer must run as this user. Throws cbir::Error with the reason.
    LocalReply post(const std::string& target, const std::string& content_type, const std::string& body,
                    double timeout_seconds) const;
    const std::filesystem::path& path() const { return path_; }

private:
    LocalServerClient(std::filesystem::path path, int folder_fd) : path_(std::move(path)), folder_fd_(folder_fd) {}
    std::filesystem::path path_;
    int folder_fd_ = -1;
};

}  // namespace cbir
