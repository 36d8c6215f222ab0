#pragma once
#include <CLI/CLI.hpp>

namespace cbir::cli {

// `cbir bench inference|decode|synth-store`: measurements for scripts/bench-*.sh, one JSON object
// per line on stdout.
std::function<int()> add_bench_command(CLI::App& app, const char* argv0);

}  // namespace cbir::cli
