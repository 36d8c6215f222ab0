#pragma once
#include <CLI/CLI.hpp>

namespace cbir::cli {

// Adds the `index` flags to app; the returned callback runs the command after parsing and gives
// the exit code.
std::function<int()> add_index_command(CLI::App& app, const char* argv0);

}  // namespace cbir::cli
