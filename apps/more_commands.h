#pragma once
// The everyday commands beyond index and query; each add_* adds its flags to a CLI11 (sub)command
// and returns the callback that runs it and gives the exit code.
#include <CLI/CLI.hpp>

namespace cbir::cli {

std::function<int()> add_similarity_command(CLI::App& app, const char* argv0);
std::function<int()> add_dups_command(CLI::App& app);
std::function<int()> add_info_command(CLI::App& app);
std::function<int()> add_eval_command(CLI::App& app);
std::function<int()> add_reindex_command(CLI::App& app);
std::function<int()> add_check_command(CLI::App& app);
std::function<int()> add_repair_command(CLI::App& app);
std::function<int()> add_remove_command(CLI::App& app);
std::function<int()> add_prune_command(CLI::App& app);
std::function<int()> add_serve_command(CLI::App& app);
std::function<int()> add_export_command(CLI::App& app);

}  // namespace cbir::cli
