#pragma once
// The boundary between cbir and LibTorch. LibTorch's static initialisers cost 0.4 s at every process
// start on our machines (measured with an empty program linked against libtorch_cpu), so the
// TorchScript embedder lives in a plugin, libcbir_torch.so, opened with dlopen only by commands
// that embed an image. Everything else (queries of indexed images, --help, re-runs over unchanged
// folders) starts in milliseconds.
#include <cstddef>

#include "embed/embedder.h"

extern "C" {
// Returns a new Embedder (delete it through its virtual destructor) or null with a message in error.
using cbir_torch_create_embedder_fn = cbir::Embedder* (*)(const char* model_path, const cbir::EmbedderOptions* options,
                                                          char* error, size_t error_size);
}

inline constexpr const char* kTorchPluginEntryPoint = "cbir_torch_create_embedder";
inline constexpr const char* kTorchPluginFileName = "libcbir_torch.so";
