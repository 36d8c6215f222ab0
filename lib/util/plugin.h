#pragma once
// Optional parts of cbir that carry heavy libraries (LibTorch, MPI) are plugins, opened with dlopen
// only by the commands that need them, so every other command starts in milliseconds. One search
// order for every plugin: the environment variable, beside the binary (build tree), an installed
// layout (bin/cbir -> lib/cbir/), then where CMake built it.
#include <filesystem>
#include <string>

namespace cbir {

struct PluginSpec {
    const char* file_name;    // "libcbir_torch.so"
    const char* env_var;      // "CBIR_TORCH_PLUGIN"
    const char* build_path;   // where CMake built it, or null
    const char* entry_point;  // the extern "C" symbol to return
    bool global_symbols;      // RTLD_GLOBAL: the plugin's libraries open components of their own (Open MPI)
    const char* what;         // "the LibTorch plugin", for the error
};

// The entry point's address; opened once per process and never closed. Throws cbir::Error listing
// what was tried.
void* open_plugin(const PluginSpec& spec);

// A helper program that runs beside cbir (the isolated HEIF decoder), found in the same order as a
// plugin: the environment variable (when set, the only place looked at, for plugins too), beside the
// binary, bin/../lib/cbir/, then where CMake built it. Empty when none is there.
std::filesystem::path find_companion_program(const char* file_name, const char* env_var, const char* build_path);

}  // namespace cbir
