#pragma once
// Which precision a run computes vectors in, and the check that a store is never extended or
// queried in another precision than its recipe's (as it is never with another model).
#include <filesystem>
#include <memory>

#include "embed/embedder.h"
#include "store/store.h"

namespace cbir {

// The float precision to load a model with for `request` (the plugin runs a quantized model in int8
// whatever it is given). With a store, Default and Auto mean the store's precision and an explicit
// request must match it; without one, Default is fp32 and Auto bf16 where `cpu` has native bf16.
// Throws cbir::Error naming the store on a mismatch.
Precision float_precision_for(PrecisionRequest request, const Store* store, const CpuPrecisionSupport& cpu);

// The precision a run on `store` computes vectors in, when it can be told without loading the model:
// an explicit request, else the store's recorded precision; nullopt for an old store with none
// recorded (its model decides). What a one-shot query asks a server to compute in.
std::optional<Precision> expected_precision(PrecisionRequest request, const Store& store);

// Loads the model (options.precision is set here) and refuses, in one line, what the loaded model
// cannot honour: bf16 or fp32 asked of an int8 model, int8 asked of a float one, a store's recorded
// precision differing. Warns once when the precision runs slowly on this CPU (bf16 emulated, int8
// without VNNI).
std::unique_ptr<Embedder> load_embedder(const std::filesystem::path& model, EmbedderOptions options,
                                        PrecisionRequest request, const Store* store);

}  // namespace cbir
