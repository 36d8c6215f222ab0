#pragma once
// body(0) .. body(count - 1) on all cores, each index once. An exception in any call stops the
// others taking more work and is rethrown here, after every thread has finished.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace cbir {

template <typename Body> void parallel_for(size_t count, const Body& body) {
    const size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), count);
    if (threads <= 1) {
        for (size_t i = 0; i < count; ++i) body(i);
        return;
    }
    std::atomic<size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    std::vector<std::thread> workers;
    for (size_t t = 0; t < threads; ++t)
        workers.emplace_back([&] {
            try {
                for (size_t i; (i = next.fetch_add(1)) < count;) body(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(failure_mutex);
                if (!failure) failure = std::current_exception();
                next = count;
            }
        });
    for (auto& w : workers) w.join();
    if (failure) std::rethrow_exception(failure);
}

}  // namespace cbir
