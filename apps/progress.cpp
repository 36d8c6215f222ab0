#include "progress.h"

#include <cstdio>

#include <fmt/format.h>

namespace cbir::cli {

ProgressBar::ProgressBar(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled), started_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::clear() {
    if (drawn_) std::fputs("\r\033[K", stderr);
    drawn_ = false;
}

void ProgressBar::update(size_t done, size_t total) {
    if (!enabled_ || total == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double elapsed = std::chrono::duration<double>(now - started_).count();
    const double rate = elapsed > 0 ? done / elapsed : 0;
    const int eta = rate > 0 ? static_cast<int>((total - done) / rate) : 0;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * done / total);
    std::fprintf(stderr, "\r\033[K%s", fmt::format("{} [{}{}] {}/{}  {:.1f}/s  ETA {}:{:02}", label_,
                                                 std::string(filled, '#'), std::string(kWidth - filled, ' '), done,
                                                 total, rate, eta / 60, eta % 60).c_str());
    drawn_ = true;
    if (done == total) clear();
}

}  // namespace cbir::cli
