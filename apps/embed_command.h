#pragma once
#include <CLI/CLI.hpp>

namespace cbir::cli {

std::function<int()> add_embed_command(CLI::App& app, const char* argv0);

}  // namespace cbir::cli
