#pragma once
// The HTTP/JSON face of a SearchService (cpp-httplib): the routes, their parameters and answers, the
// web page at "/", request limits and per-route statistics. Documented in the README ("cbir serve").
#include <cstddef>
#include <memory>
#include <string>

#include "serve/request_stats.h"
#include "serve/search_service.h"

namespace httplib {
class Server;
}

namespace cbir {

struct HttpOptions {
    std::string host = "127.0.0.1";
    int port = 19121;                       // 0: any free port (bind() says which)
    size_t max_body_bytes = 64u << 20;      // larger requests get 413
    int request_threads = 8;
};

class HttpApi {
public:
    HttpApi(SearchService& service, const HttpOptions& options);
    ~HttpApi();
    // Binds the listening socket; returns the port. Throws cbir::Error when it cannot.
    int bind();
    // Answers requests until stop(); requests in flight finish before it returns.
    void run();
    // Safe from any thread, before or during run().
    void stop();

private:
    void add_routes();
    SearchService& service_;
    HttpOptions options_;
    RequestStats stats_;
    std::unique_ptr<httplib::Server> server_;
};

}  // namespace cbir
