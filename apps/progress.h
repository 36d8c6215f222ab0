#pragma once
// A one-line progress bar with rate and ETA on stderr, drawn only when stderr is a terminal and
// at most ten times a second; nothing at all in a pipe or a log file.
#include <chrono>
#include <string>

namespace cbir::cli {

class ProgressBar {
public:
    ProgressBar(std::string label, bool enabled);
    ~ProgressBar();
    void update(size_t done, size_t total);
    // Clears the line so that a message can be printed; the next update redraws it.
    void clear();

private:
    std::string label_;
    bool enabled_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point started_;
    std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace cbir::cli
