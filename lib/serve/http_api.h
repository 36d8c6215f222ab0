#pragma once
// The HTTP/JSON face of a ServeBackend (one store or a store set; cpp-httplib, through HttpServer):
// the routes, their parameters and answers, the web page at "/", which requests are accepted at all (methods,
// encodings, Host and Origin), and per-route statistics. Documented in the README ("cbir serve").
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "serve/request_stats.h"
#include "serve/serve_backend.h"

namespace cbir {

class HttpServer;
class LocalSocketListener;
class WorkSlots;

struct HttpOptions {
    std::string host = "127.0.0.1";
    int port = 19121;                   // 0: any free port (bind() says which)
    size_t max_body_bytes = 64u << 20;  // larger request bodies get 413, however they are sent
    int request_threads = 8;            // requests worked on at once (decoding, searching, files)
    int max_connections = 128;          // past it: the longest-idle connection closes, or 503
    double request_timeout_seconds = 30;  // a request's headers and body must arrive within it
    // Host names accepted besides IP addresses, "localhost" and `host` (DNS rebinding: a page on
    // another site whose name resolves to this machine sends its own name as Host).
    std::vector<std::string> allowed_hosts;
    // The store whose local socket (<store>/serve/query.sock, lib/serve/local_socket.h) also answers
    // the API, to this user only, under the same limits; empty: none.
    std::filesystem::path local_socket_store;
};

// Whether a request's Host header names this server: an IP address, localhost, the listening host,
// or an allowed name (any port: ssh or container port forwarding changes it). An absent Host passes.
bool host_allowed(const std::string& host_header, const std::string& listening_host,
                  const std::vector<std::string>& allowed_hosts);
// Whether a request that changes or computes something comes from this server's own pages: no
// Origin header (not a browser, or a same-origin GET), or "http://" + its Host.
bool origin_allowed(const std::string& origin_header, const std::string& host_header);

class HttpApi {
public:
    HttpApi(ServeBackend& service, const HttpOptions& options);
    ~HttpApi();
    // Binds the listening socket; returns the port. Throws cbir::Error when it cannot. Then the local
    // socket, if asked for: a failure there is a warning (queries then load the model themselves).
    int bind();
    // Where the local socket listens; empty when there is none.
    std::filesystem::path local_socket() const;
    // Answers requests until stop(); requests in flight finish (in bounded time) before it returns.
    void run();
    // Safe from any thread, before or during run().
    void stop();

private:
    // The same routes on each listener; `via` names it in the per-route statistics.
    void add_routes(HttpServer& server, const std::string& via);
    // What every request passes through: Host/Origin checks, timing, JSON errors.
    void add_request_handlers(HttpServer& server, const std::string& via);
    void add_status_routes(HttpServer& server);  // the page, /health, /stats
    void add_search_route(HttpServer& server);
    void add_insert_route(HttpServer& server);
    void add_image_routes(HttpServer& server);  // look up, file, thumbnail
    void add_remove_routes(HttpServer& server);
    ServeBackend& service_;
    HttpOptions options_;
    RequestStats stats_;
    std::unique_ptr<WorkSlots> work_slots_;
    std::unique_ptr<HttpServer> server_;
    std::unique_ptr<HttpServer> local_server_;  // on local_listener_'s socket, when there is one
    std::unique_ptr<LocalSocketListener> local_listener_;
};

}  // namespace cbir
