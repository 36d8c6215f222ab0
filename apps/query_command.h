#pragma once
#include <CLI/CLI.hpp>

namespace cbir::cli {

std::function<int()> add_query_command(CLI::App& app);

}  // namespace cbir::cli
