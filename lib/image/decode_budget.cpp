#include "image/decode_budget.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "image/limits.h"

namespace cbir {
namespace {

struct Budget {
    std::mutex mutex;
    std::condition_variable freed;
    long long in_use = 0;
};

Budget& budget() {
    static Budget instance;
    return instance;
}

}  // namespace

std::shared_ptr<const void> reserve_decode_pixels(long long pixels) {
    const long long capacity = std::max(1LL, max_image_pixels());
    pixels = std::clamp(pixels, 1LL, capacity);
    Budget& b = budget();
    {
        std::unique_lock<std::mutex> lock(b.mutex);
        b.freed.wait(lock, [&] { return b.in_use + pixels <= capacity; });
        b.in_use += pixels;
    }
    return std::shared_ptr<const void>(nullptr, [pixels](const void*) {
        Budget& b = budget();
        {
            std::lock_guard<std::mutex> lock(b.mutex);
            b.in_use -= pixels;
        }
        b.freed.notify_all();
    });
}

}  // namespace cbir
