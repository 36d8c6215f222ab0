#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "embed/torch_plugin.h"
#include "util/error.h"

namespace cbir {
namespace {

// Where the plugin may be: $CBIR_TORCH_PLUGIN; beside the build tree's binaries (build/apps/cbir ->
// build/lib/); an installed layout (bin/cbir -> lib/cbir/); and where CMake built it.
std::vector<std::filesystem::path> plugin_candidates() {
    std::vector<std::filesystem::path> out;
    if (const char* env = std::getenv("CBIR_TORCH_PLUGIN"); env && *env) out.emplace_back(env);
    std::error_code ec;
    const auto exe_dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
    if (!ec) {
        out.push_back(exe_dir / kTorchPluginFileName);
        out.push_back(exe_dir / ".." / "lib" / kTorchPluginFileName);
        out.push_back(exe_dir / ".." / "lib" / "cbir" / kTorchPluginFileName);
    }
#ifdef CBIR_TORCH_PLUGIN_BUILD_PATH
    out.emplace_back(CBIR_TORCH_PLUGIN_BUILD_PATH);
#endif
    return out;
}

cbir_torch_create_embedder_fn open_plugin() {
    static std::mutex mutex;
    static cbir_torch_create_embedder_fn create = nullptr;
    std::lock_guard<std::mutex> lock(mutex);
    if (create) return create;
    std::string tried;
    for (const auto& candidate : plugin_candidates()) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(candidate, ec)) continue;
        // Never closed: the embedders it creates live until the process ends.
        void* handle = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            tried += std::string("\n  ") + ::dlerror();
            continue;
        }
        create = reinterpret_cast<cbir_torch_create_embedder_fn>(::dlsym(handle, kTorchPluginEntryPoint));
        if (create) return create;
        tried += "\n  " + candidate.string() + ": no entry point " + kTorchPluginEntryPoint;
    }
    throw Error(std::string("cannot load the LibTorch plugin ") + kTorchPluginFileName +
                " (reinstall cbir, or set CBIR_TORCH_PLUGIN to its path)" + tried);
}

}  // namespace

std::unique_ptr<Embedder> Embedder::load(const std::filesystem::path& model, const EmbedderOptions& options) {
    cbir_torch_create_embedder_fn create = open_plugin();
    char error[2048] = {0};
    Embedder* embedder = create(model.c_str(), &options, error, sizeof error);
    if (!embedder) throw Error(error);
    return std::unique_ptr<Embedder>(embedder);
}

}  // namespace cbir
