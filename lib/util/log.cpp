#include "util/log.h"

#include <cstdio>
#include <mutex>

namespace cbir {
namespace {

std::mutex& sink_mutex() {
    static std::mutex m;
    return m;
}

LogSink& sink() {
    static LogSink s = [](LogLevel level, const std::string& message) {
        if (level <= LogLevel::Notice) std::fprintf(stderr, "cbir: %s\n", message.c_str());
    };
    return s;
}

}  // namespace

void set_log_sink(LogSink new_sink) {
    std::lock_guard<std::mutex> lock(sink_mutex());
    sink() = std::move(new_sink);
}

void log_message(LogLevel level, const std::string& message) {
    std::lock_guard<std::mutex> lock(sink_mutex());
    if (sink()) sink()(level, message);
}

}  // namespace cbir
