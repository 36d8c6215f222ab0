#include "embed/torch_plugin.h"
#include "util/error.h"
#include "util/plugin.h"

namespace cbir {

std::unique_ptr<Embedder> Embedder::load(const std::filesystem::path& model, const EmbedderOptions& options) {
    static const PluginSpec spec{kTorchPluginFileName, "CBIR_TORCH_PLUGIN",
#ifdef CBIR_TORCH_PLUGIN_BUILD_PATH
                                 CBIR_TORCH_PLUGIN_BUILD_PATH,
#else
                                 nullptr,
#endif
                                 kTorchPluginEntryPoint, false, "the LibTorch plugin"};
    auto create = reinterpret_cast<cbir_torch_create_embedder_fn>(open_plugin(spec));
    char error[2048] = {0};
    Embedder* embedder = create(model.c_str(), &options, error, sizeof error);
    if (!embedder) throw Error(error);
    return std::unique_ptr<Embedder>(embedder);
}

}  // namespace cbir
