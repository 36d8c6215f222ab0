#pragma once
// A stop request (Ctrl-C, SIGTERM) that long operations poll at safe points, so they end cleanly
// with everything committed so far kept. The app's signal handler sets it; the library never installs
// handlers itself.
#include <atomic>

namespace cbir {

inline std::atomic<bool>& stop_requested() {
    static std::atomic<bool> flag{false};
    return flag;
}

}  // namespace cbir
