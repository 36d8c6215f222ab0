#pragma once
// cpp-httplib's server with the connection handling a long-running service needs against slow, idle
// and greedy clients. httplib alone gives each of a fixed number of threads one connection at a time
// and waits on it without an overall deadline, so eight slow clients stop it; it reads a chunked body
// whole, whatever its size. Here:
// - every connection has a thread of its own, up to max_connections; past that the longest-idle one
//   is closed to make room, or, when none is idle, the newcomer is answered 503 and closed;
// - every wait on a client has a deadline: the next request within idle_seconds, a whole request
//   (headers and body) within request_seconds of its first byte, a whole response within
//   response_seconds; a connection serves at most max_requests_per_connection requests;
// - request bytes are counted as the connection reads them, whatever the route, method or encoding:
//   headers past max_header_bytes, a body past max_body_bytes (chunk framing included) or past what
//   all bodies together may hold (body_memory_bytes, which also counts response bodies a route
//   holds, see hold_response_bytes) stop being read, and the route says why;
// - stop() ends in bounded time: idle connections and requests still sending their headers are
//   closed at once; requests being answered get stop_grace_seconds more of their client's time.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>

namespace cbir {

namespace connection_detail {
class Registry;
class StopSignal;
class BodyBudget;
}  // namespace connection_detail

struct ConnectionLimits {
    size_t max_connections = 128;
    size_t max_requests_per_connection = 100;
    double idle_seconds = 5;
    double request_seconds = 30;
    double response_seconds = 60;
    double stop_grace_seconds = 5;
    size_t max_header_bytes = 64u << 10;
    size_t max_body_bytes = 64u << 20;
    // Request bodies being read or handled and response bodies being written, all connections together.
    size_t body_memory_bytes = 512u << 20;
};

// Why a request's bytes stopped coming before it was whole.
enum class ReadFailure { None, HeadersTooLarge, BodyTooLarge, ServerBusy, TimedOut, Stopping, Closed };

struct ConnectionCounts {
    size_t open = 0;
    size_t refused = 0;  // answered 503: every connection was busy
    size_t evicted = 0;  // idle ones closed to make room
    size_t body_bytes = 0;  // of request and response bodies held now (ConnectionLimits::body_memory_bytes)
};

class HttpServer : public httplib::Server {
public:
    // A server made with a sibling shares the sibling's connection limit and body budget: the two
    // listeners of one service (its TCP port and its local socket) are held to one set of limits.
    explicit HttpServer(const ConnectionLimits& limits, const HttpServer* sibling = nullptr);
    ~HttpServer() override;

    // Binds the listening socket; returns the port, or -1 when it cannot. port 0: any free port.
    int bind(const std::string& host, int port);
    // Or accepts on a bound, listening Unix socket (LocalSocketListener), answering only clients that
    // run as this process's user (SO_PEERCRED); it closes the descriptor.
    void adopt_local_socket(int listening_socket);
    // Answers until stop(); returns once every connection has ended.
    void run();
    // Safe from any thread, before or during run().
    void stop();

    const ConnectionLimits& limits() const { return limits_; }
    ConnectionCounts connection_counts() const;

    // About the request being answered on the calling thread (for route handlers):
    // why its bytes stopped coming (None while they come),
    static ReadFailure read_failure();
    // whether part of its body was never read (the connection then closes after the answer),
    static bool body_unread();
    // the route read the whole body (a chunked body's end is only known to its reader),
    static void body_read_to_end();
    // closing the connection after the answer,
    static void close_after_response();
    // and holding `bytes` of a response body until it is written (a file being sent to a client that
    // may take its time): false when that would pass body_memory_bytes.
    static bool hold_response_bytes(size_t bytes);

private:
    // httplib calls it on a thread of the task queue for each accepted connection (a private virtual,
    // overridden as httplib's own SSLServer does): the connection's requests, one after another.
    bool process_and_close_socket(int sock) override;
    void refuse(int sock);

    ConnectionLimits limits_;
    std::shared_ptr<connection_detail::Registry> registry_;
    std::unique_ptr<connection_detail::StopSignal> stop_;
    std::shared_ptr<connection_detail::BodyBudget> body_budget_;
    std::atomic<bool> listening_stopped_{false};
    bool same_user_only_ = false;
};

}  // namespace cbir
