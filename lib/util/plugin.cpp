#include "util/plugin.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "util/error.h"

namespace cbir {
namespace {

std::vector<std::filesystem::path> candidates(const char* file_name, const char* env_var, const char* build_path) {
    std::vector<std::filesystem::path> out;
    // A path the user names is the one used: falling back past it would hide their mistake.
    if (const char* env = std::getenv(env_var); env && *env) return {env};
    std::error_code ec;
    const auto exe_dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
    if (!ec) {
        out.push_back(exe_dir / file_name);
        out.push_back(exe_dir / ".." / "lib" / file_name);
        out.push_back(exe_dir / ".." / "lib" / "cbir" / file_name);
    }
    if (build_path) out.emplace_back(build_path);
    return out;
}

}  // namespace

void* open_plugin(const PluginSpec& spec) {
    static std::mutex mutex;
    static std::map<std::string, void*> opened;
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = opened.find(spec.entry_point); it != opened.end()) return it->second;
    std::string tried;
    for (const auto& candidate : candidates(spec.file_name, spec.env_var, spec.build_path)) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(candidate, ec)) continue;
        void* handle = ::dlopen(candidate.c_str(), RTLD_NOW | (spec.global_symbols ? RTLD_GLOBAL : RTLD_LOCAL));
        if (!handle) {
            tried += std::string("\n  ") + ::dlerror();
            continue;
        }
        if (void* entry = ::dlsym(handle, spec.entry_point)) return opened[spec.entry_point] = entry;
        tried += "\n  " + candidate.string() + ": no entry point " + spec.entry_point;
    }
    throw Error(std::string("cannot load ") + spec.what + " " + spec.file_name + " (reinstall cbir, or set " +
                spec.env_var + " to its path)" + tried);
}

std::filesystem::path find_companion_program(const char* file_name, const char* env_var, const char* build_path) {
    for (const auto& candidate : candidates(file_name, env_var, build_path)) {
        std::error_code ec;
        if (std::filesystem::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

}  // namespace cbir
