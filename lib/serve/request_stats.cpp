#include "serve/request_stats.h"

#include <algorithm>
#include <cmath>

namespace cbir {
namespace {

// Nearest-rank percentile of an unsorted copy.
double percentile(std::vector<double> values, double p) {
    if (values.empty()) return 0;
    const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
    const size_t index = std::min(values.size() - 1, rank == 0 ? 0 : rank - 1);
    std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
    return values[index];
}

}  // namespace

void RequestStats::record(const std::string& route, int status, double milliseconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    Route& r = routes_[route];
    ++r.requests;
    if (status >= 400) ++r.errors;
    r.max_ms = std::max(r.max_ms, milliseconds);
    if (r.recent.size() < window_) {
        r.recent.push_back(milliseconds);
    } else {
        r.recent[r.next] = milliseconds;
        r.next = (r.next + 1) % window_;
    }
}

std::vector<RouteStats> RequestStats::snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<RouteStats> out;
    for (const auto& [name, r] : routes_)
        out.push_back({name, r.requests, r.errors, percentile(r.recent, 50), percentile(r.recent, 99), r.max_ms});
    return out;
}

double RequestStats::uptime_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

}  // namespace cbir
