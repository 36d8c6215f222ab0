#pragma once
// Messages from the library to the person running it (warnings, skipped files, rebuilds). The app
// decides where they go and how many: the library never writes to stdout, which carries results.
#include <functional>
#include <string>

namespace cbir {

enum class LogLevel { Error = 0, Warning = 1, Notice = 2, Debug = 3 };

using LogSink = std::function<void(LogLevel, const std::string&)>;

void set_log_sink(LogSink sink);           // default: stderr, "cbir: " prefix, up to Notice
void log_message(LogLevel level, const std::string& message);
inline void log_warning(const std::string& m) { log_message(LogLevel::Warning, m); }
inline void log_notice(const std::string& m) { log_message(LogLevel::Notice, m); }
inline void log_debug(const std::string& m) { log_message(LogLevel::Debug, m); }

}  // namespace cbir
