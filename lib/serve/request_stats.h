#pragma once
// Per-route request counts and latencies for GET /stats: how many, how many failed, and the median
// and 99th percentile over the most recent requests (a bounded window, so a long-running server
// reports how it is doing now, in constant memory).
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace cbir {

struct RouteStats {
    std::string route;  // "POST /search"
    size_t requests = 0;
    size_t errors = 0;  // 4xx and 5xx answers
    double p50_ms = 0;  // over the window
    double p99_ms = 0;
    double max_ms = 0;
};

class RequestStats {
public:
    explicit RequestStats(size_t window = 4096) : window_(window) {}
    void record(const std::string& route, int status, double milliseconds);
    std::vector<RouteStats> snapshot() const;
    double uptime_seconds() const;

private:
    struct Route {
        size_t requests = 0;
        size_t errors = 0;
        double max_ms = 0;
        std::vector<double> recent;  // ring buffer of the last `window_` latencies
        size_t next = 0;
    };
    size_t window_;
    mutable std::mutex mutex_;
    std::map<std::string, Route> routes_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace cbir
