#include "serve/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "serve/local_socket.h"
#include "util/error.h"

namespace cbir {
namespace connection_detail {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

TimePoint seconds_from_now(double seconds) {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Set once by stop(). Every wait on a client also polls its eventfd, so no wait outlives a stop.
class StopSignal {
public:
    StopSignal() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (fd_ < 0) throw Error(std::string("cannot create an eventfd: ") + std::strerror(errno));
    }
    ~StopSignal() { ::close(fd_); }
    StopSignal(const StopSignal&) = delete;
    StopSignal& operator=(const StopSignal&) = delete;

    void trigger() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        at_ = Clock::now();
        stopping_ = true;
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t written = ::write(fd_, &one, sizeof one);
    }
    bool stopping() const { return stopping_; }
    TimePoint at() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return at_;
    }
    int fd() const { return fd_; }

private:
    int fd_;
    mutable std::mutex mutex_;
    std::atomic<bool> stopping_{false};
    TimePoint at_{};
};

// The bytes of request and response bodies held at once by all connections: with a thread per
// connection, the per-request limit alone would let every connection hold a maximal body at once.
class BodyBudget {
public:
    explicit BodyBudget(size_t capacity) : capacity_(capacity) {}
    bool reserve(size_t bytes) {
        size_t used = used_.load();
        do {
            if (bytes > capacity_ - used) return false;
        } while (!used_.compare_exchange_weak(used, used + bytes));
        return true;
    }
    void release(size_t bytes) { used_ -= bytes; }
    size_t used() const { return used_.load(); }

private:
    const size_t capacity_;
    std::atomic<size_t> used_{0};
};

struct Entry {
    int socket;
    bool idle;  // between requests (or before the first)
    TimePoint idle_since;
    bool evicted;  // shut down to make room; its thread has yet to notice
};

// The open connections, for the limit: a newcomer past it takes the place of the longest-idle one.
class Registry {
public:
    using Handle = std::list<Entry>::iterator;
    explicit Registry(size_t limit) : limit_(limit) {}

    // nullopt when the limit is reached and every connection is in the middle of a request.
    std::optional<Handle> admit(int socket) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (live_ >= limit_) {
            Handle oldest = entries_.end();
            for (Handle it = entries_.begin(); it != entries_.end(); ++it)
                if (it->idle && !it->evicted && (oldest == entries_.end() || it->idle_since < oldest->idle_since))
                    oldest = it;
            if (oldest == entries_.end()) {
                ++refused_;
                return std::nullopt;
            }
            // Its thread, waiting for a request, sees the end of the stream and closes the socket.
            ::shutdown(oldest->socket, SHUT_RDWR);
            oldest->evicted = true;
            --live_;
            ++evicted_;
        }
        ++live_;
        return entries_.insert(entries_.end(), Entry{socket, true, Clock::now(), false});
    }
    // A request begins; false when the connection was closed to make room meanwhile.
    bool set_busy(Handle handle) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (handle->evicted) return false;
        handle->idle = false;
        return true;
    }
    void set_idle(Handle handle) {
        std::lock_guard<std::mutex> lock(mutex_);
        handle->idle = true;
        handle->idle_since = Clock::now();
    }
    // Before the socket is closed: its number may then be given to another connection.
    void remove(Handle handle) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!handle->evicted) --live_;
        entries_.erase(handle);
    }
    ConnectionCounts counts() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return {live_, refused_, evicted_};
    }

private:
    const size_t limit_;
    mutable std::mutex mutex_;
    std::list<Entry> entries_;
    size_t live_ = 0;
    size_t refused_ = 0;
    size_t evicted_ = 0;
};

namespace {

enum class Phase { Idle, Headers, Body };
enum class WaitResult { Ready, TimedOut, Stopping, Failed };

std::string address_text(const sockaddr_storage& address, int& port) {
    char text[INET6_ADDRSTRLEN] = {0};
    if (address.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
        ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
        port = ntohs(v4.sin_port);
    } else if (address.ss_family == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
        ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
        port = ntohs(v6.sin6_port);
    }
    return text;
}

// One connection's bytes, as httplib reads and writes them: buffered reads, every wait bounded by
// the deadline of what is being waited for, and the bytes of each part of a request counted.
class ConnectionStream final : public httplib::Stream {
public:
    ConnectionStream(int socket, const ConnectionLimits& limits, const StopSignal& stop, BodyBudget& budget)
        : socket_(socket), limits_(limits), stop_(stop), budget_(budget) {}
    ~ConnectionStream() override { end_request(); }

    // Between requests: true when the next one's first bytes are there (or the client closed).
    bool wait_for_request() {
        phase_ = Phase::Idle;
        return begin_ < end_ || wait(POLLIN, seconds_from_now(limits_.idle_seconds), TimePoint{}) == WaitResult::Ready;
    }
    void start_request() {
        phase_ = Phase::Headers;
        header_bytes_ = body_bytes_ = declared_length_ = 0;
        length_unknown_ = body_done_ = writing_ = false;
        failure_ = ReadFailure::None;
        read_deadline_ = seconds_from_now(limits_.request_seconds);
    }
    // The headers are in; what follows is the body.
    void start_body(uint64_t declared_length, bool length_unknown) {
        phase_ = Phase::Body;
        declared_length_ = declared_length;
        length_unknown_ = length_unknown;
    }
    void set_body_done() { body_done_ = true; }
    bool hold(size_t bytes) {
        if (!budget_.reserve(bytes)) return false;
        reserved_ += bytes;
        return true;
    }
    bool body_unread() const {
        if (phase_ != Phase::Body) return true;  // the headers never ended
        return length_unknown_ ? !body_done_ : body_bytes_ < declared_length_;
    }
    // The request is answered: what it held goes back to the budget.
    void end_request() {
        budget_.release(reserved_);
        reserved_ = 0;
    }
    ReadFailure failure() const { return failure_; }

    bool is_readable() const override {
        return begin_ < end_ || wait(POLLIN, read_deadline_, TimePoint{}) == WaitResult::Ready;
    }
    bool is_writable() const override {
        return wait(POLLOUT, writing_ ? write_deadline_ : seconds_from_now(limits_.response_seconds),
                    writing_ ? write_started_ : Clock::now()) == WaitResult::Ready;
    }

    ssize_t read(char* ptr, size_t size) override {
        if (failure_ != ReadFailure::None) return -1;
        writing_ = false;  // an interim answer (100 Continue) was written; the response's deadline starts later
        size_t allowed = size;
        if (phase_ == Phase::Body) {
            if (body_bytes_ >= limits_.max_body_bytes) return fail(ReadFailure::BodyTooLarge);
            allowed = std::min(size, limits_.max_body_bytes - body_bytes_);
        } else {
            if (header_bytes_ >= limits_.max_header_bytes) return fail(ReadFailure::HeadersTooLarge);
            allowed = std::min(size, limits_.max_header_bytes - header_bytes_);
        }
        if (begin_ == end_) {
            const ssize_t filled = fill();
            if (filled <= 0) return filled;
        }
        const size_t n = std::min(allowed, end_ - begin_);
        if (phase_ == Phase::Body) {
            if (!hold(n)) return fail(ReadFailure::ServerBusy);
            body_bytes_ += n;
        } else {
            header_bytes_ += n;
        }
        std::memcpy(ptr, buffer_ + begin_, n);
        begin_ += n;
        return static_cast<ssize_t>(n);
    }

    // All of it or -1: httplib writes a response's head and body with one call each.
    ssize_t write(const char* ptr, size_t size) override {
        if (!writing_) {
            writing_ = true;
            write_started_ = Clock::now();
            write_deadline_ = seconds_from_now(limits_.response_seconds);
        }
        size_t sent = 0;
        while (sent < size) {
            const ssize_t n = ::send(socket_, ptr + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n >= 0) {
                sent += static_cast<size_t>(n);
                continue;
            }
            if (errno == EINTR) continue;
            if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
                wait(POLLOUT, write_deadline_, write_started_) != WaitResult::Ready)
                return -1;
        }
        return static_cast<ssize_t>(size);
    }

    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        sockaddr_storage address{};
        socklen_t length = sizeof address;
        port = 0;
        ip = ::getpeername(socket_, reinterpret_cast<sockaddr*>(&address), &length) == 0 ? address_text(address, port) : "";
    }
    void get_local_ip_and_port(std::string& ip, int& port) const override {
        sockaddr_storage address{};
        socklen_t length = sizeof address;
        port = 0;
        ip = ::getsockname(socket_, reinterpret_cast<sockaddr*>(&address), &length) == 0 ? address_text(address, port) : "";
    }
    int socket() const override { return socket_; }

private:
    ssize_t fail(ReadFailure why) {
        failure_ = why;
        return -1;
    }

    ssize_t fill() {
        for (;;) {
            const ssize_t n = ::recv(socket_, buffer_, sizeof buffer_, MSG_DONTWAIT);
            if (n > 0) {
                begin_ = 0;
                end_ = static_cast<size_t>(n);
                return n;
            }
            if (n == 0) {
                failure_ = ReadFailure::Closed;
                return 0;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(ReadFailure::Closed);
            switch (wait(POLLIN, read_deadline_, TimePoint{})) {
                case WaitResult::Ready: break;
                case WaitResult::TimedOut: return fail(ReadFailure::TimedOut);
                case WaitResult::Stopping: return fail(ReadFailure::Stopping);
                case WaitResult::Failed: return fail(ReadFailure::Closed);
            }
        }
    }

    // Until the socket is ready for `events` or the deadline passes. A stop cuts a wait short: at
    // once for the next request or the rest of the headers (no request is under way), else after
    // the grace period counted from the stop (or from `grace_from`, when a response began later).
    WaitResult wait(short events, TimePoint deadline, TimePoint grace_from) const {
        for (;;) {
            const bool stopping = stop_.stopping();
            TimePoint limit = deadline;
            if (stopping) {
                if (events == POLLIN && phase_ != Phase::Body) return WaitResult::Stopping;
                const auto grace = std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(limits_.stop_grace_seconds));
                limit = std::min(limit, std::max(stop_.at(), grace_from) + grace);
            }
            const TimePoint now = Clock::now();
            if (now >= limit) return stopping ? WaitResult::Stopping : WaitResult::TimedOut;
            const long long ms = std::chrono::ceil<std::chrono::milliseconds>(limit - now).count();
            pollfd fds[2] = {{socket_, events, 0}, {stop_.fd(), POLLIN, 0}};
            const int ready = ::poll(fds, stopping ? 1 : 2, static_cast<int>(std::min<long long>(ms, INT_MAX)));
            if (ready < 0 && errno != EINTR) return WaitResult::Failed;
            if (ready > 0 && fds[0].revents != 0) return WaitResult::Ready;  // or an error the next call reports
        }
    }

    const int socket_;
    const ConnectionLimits& limits_;
    const StopSignal& stop_;
    BodyBudget& budget_;
    char buffer_[16384];
    size_t begin_ = 0, end_ = 0;

    Phase phase_ = Phase::Idle;
    size_t header_bytes_ = 0;
    size_t body_bytes_ = 0;
    size_t reserved_ = 0;
    uint64_t declared_length_ = 0;
    bool length_unknown_ = false;  // chunked (or another transfer coding): only its reader knows the end
    bool body_done_ = false;
    ReadFailure failure_ = ReadFailure::None;
    TimePoint read_deadline_{};
    bool writing_ = false;
    TimePoint write_started_{};
    TimePoint write_deadline_{};
};

struct ConnectionState {
    ConnectionStream* stream;
    bool close_requested = false;
};

// The connection whose request the calling thread is answering (a connection keeps its thread).
thread_local ConnectionState* current_connection = nullptr;

// A thread for each connection, started as connections come and kept for the next ones, at most
// max_threads (further connections wait for one to end).
class ConnectionThreads final : public httplib::TaskQueue {
public:
    explicit ConnectionThreads(size_t max_threads) : max_threads_(max_threads) {}
    ~ConnectionThreads() override { shutdown(); }

    void enqueue(std::function<void()> job) override {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back(std::move(job));
        if (jobs_.size() > idle_ && threads_.size() < max_threads_) threads_.emplace_back([this] { work(); });
        wake_.notify_one();
    }
    // Runs the connections already accepted, then joins every thread.
    void shutdown() override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& thread : threads_)
            if (thread.joinable()) thread.join();
    }

private:
    void work() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            ++idle_;
            wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty()) return;
            std::function<void()> job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            job = nullptr;
            lock.lock();
        }
    }

    const size_t max_threads_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    size_t idle_ = 0;
    bool stopping_ = false;
};

// Threads beyond max_connections: they answer 503 to connections past the limit while all are held.
constexpr size_t kRefusalThreads = 16;

// Closes a connection whose client may still be sending (an unread body, a refused request): its
// bytes are read and dropped for a moment first, so that closing does not reset the connection
// before the client has read the answer.
void drain_then_close(int socket, double seconds) {
    ::shutdown(socket, SHUT_WR);
    const TimePoint deadline = seconds_from_now(seconds);
    char sink[16384];
    size_t drained = 0;
    while (drained < (16u << 20)) {
        const TimePoint now = Clock::now();
        if (now >= deadline) break;
        pollfd fd{socket, POLLIN, 0};
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
        if (::poll(&fd, 1, static_cast<int>(ms)) <= 0) break;
        const ssize_t n = ::recv(socket, sink, sizeof sink, MSG_DONTWAIT);
        if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) break;
        if (n > 0) drained += static_cast<size_t>(n);
    }
    ::close(socket);
}

// httplib's setup_request hook: the headers are parsed, the body (if any) comes next.
void on_headers(httplib::Request& req, ConnectionStream& stream) {
    // Ranges are not served (RFC 9110 lets a server ignore them): httplib would build every range of
    // a file in memory, outside the body budget, and a few thousand "0-" make gigabytes of one file.
    req.ranges.clear();
    req.headers.erase("Range");
    // RFC 9112 6.3: a request with neither Content-Length nor Transfer-Encoding has no body (httplib
    // would read one until the client closes).
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) req.set_header("Content-Length", "0");
    const bool length_unknown = req.has_header("Transfer-Encoding");
    stream.start_body(length_unknown ? 0 : std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10),
                      length_unknown);
}

}  // namespace
}  // namespace connection_detail

using namespace connection_detail;

HttpServer::HttpServer(const ConnectionLimits& limits, const HttpServer* sibling)
    : limits_(limits),
      registry_(sibling ? sibling->registry_ : std::make_shared<Registry>(limits.max_connections)),
      stop_(std::make_unique<StopSignal>()),
      body_budget_(sibling ? sibling->body_budget_ : std::make_shared<BodyBudget>(limits.body_memory_bytes)) {
    new_task_queue = [this] {
        // listen_after_bind() has begun: a stop that came before it took no effect on httplib.
        if (stop_->stopping()) stop();
        return new ConnectionThreads(limits_.max_connections + kRefusalThreads);
    };
    set_payload_max_length(limits.max_body_bytes);
    // What httplib announces in Keep-Alive headers; process_and_close_socket enforces them.
    set_keep_alive_max_count(limits.max_requests_per_connection);
    set_keep_alive_timeout(static_cast<time_t>(std::ceil(limits.idle_seconds)));
    // Expect: 100-continue with a body declared too large: refused before the client sends it.
    set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > limits_.max_body_bytes) {
            res.status = 413;
            return 413;
        }
        return 100;
    });
}

HttpServer::~HttpServer() = default;

int HttpServer::bind(const std::string& host, int port) {
    const int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
    // httplib listens with a backlog of 5: a burst of connections would wait for SYN retries.
    if (bound >= 0) ::listen(svr_sock_, SOMAXCONN);
    return bound;
}

void HttpServer::adopt_local_socket(int listening_socket) {
    set_address_family(AF_UNIX);
    set_tcp_nodelay(false);
    svr_sock_ = listening_socket;
    same_user_only_ = true;
}

void HttpServer::run() { listen_after_bind(); }

void HttpServer::stop() {
    stop_->trigger();
    // httplib's own stop() must run once, while it runs (it asserts that the socket is still open).
    if (is_running() && !listening_stopped_.exchange(true)) httplib::Server::stop();
}

ConnectionCounts HttpServer::connection_counts() const {
    ConnectionCounts counts = registry_->counts();
    counts.body_bytes = body_budget_->used();
    return counts;
}

ReadFailure HttpServer::read_failure() {
    return current_connection ? current_connection->stream->failure() : ReadFailure::None;
}

bool HttpServer::body_unread() { return current_connection && current_connection->stream->body_unread(); }

void HttpServer::body_read_to_end() {
    if (current_connection) current_connection->stream->set_body_done();
}

void HttpServer::close_after_response() {
    if (current_connection) current_connection->close_requested = true;
}

bool HttpServer::hold_response_bytes(size_t bytes) { return !current_connection || current_connection->stream->hold(bytes); }

bool HttpServer::process_and_close_socket(int sock) {
    if (same_user_only_ && !peer_is_same_user(sock)) {  // not a word to another user's process
        ::close(sock);
        return false;
    }
    std::optional<Registry::Handle> handle;
    if (stop_->stopping() || !(handle = registry_->admit(sock))) {
        refuse(sock);
        return false;
    }
    ConnectionStream stream(sock, limits_, *stop_, *body_budget_);
    ConnectionState state{&stream};
    current_connection = &state;
    bool client_may_be_sending = false;
    for (size_t served = 0; served < limits_.max_requests_per_connection; ++served) {
        if (!stream.wait_for_request() || !registry_->set_busy(*handle)) break;
        stream.start_request();
        state.close_requested = false;
        const bool last = served + 1 == limits_.max_requests_per_connection || stop_->stopping();
        bool client_closes = false;
        const bool answered = process_request(stream, last, client_closes,
                                              [&stream](httplib::Request& req) { on_headers(req, stream); });
        const bool unread = stream.body_unread();
        stream.end_request();
        if (!answered || last || client_closes || state.close_requested || unread ||
            stream.failure() != ReadFailure::None) {
            client_may_be_sending = answered && unread;
            break;
        }
        registry_->set_idle(*handle);
    }
    current_connection = nullptr;
    registry_->remove(*handle);
    if (client_may_be_sending)
        drain_then_close(sock, stop_->stopping() ? 0.2 : 2.0);
    else
        ::close(sock);
    return true;
}

void HttpServer::refuse(int sock) {
    const bool stopping = stop_->stopping();
    const std::string body = stopping
        ? R"json({"error": "the server is stopping", "status": 503})json"
        : R"json({"error": "too many connections, every one busy with a request; retry (cbir serve --max-connections)", "status": 503})json";
    const std::string response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body;
    // A new connection's send buffer is empty: this fits, or the client is not worth waiting for.
    [[maybe_unused]] ssize_t sent = ::send(sock, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    drain_then_close(sock, stopping ? 0.1 : 1.0);
}

}  // namespace cbir
