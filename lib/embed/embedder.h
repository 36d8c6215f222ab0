#pragma once
// Runs a TorchScript feature extractor: float [N,3,H,W] (preprocessed) -> float [N,D]. The only part
// of cbir that includes LibTorch; the header stays torch-free so the rest compiles fast.
#include <filesystem>
#include <memory>
#include <vector>

#include "embed/precision.h"

namespace cbir {

struct EmbedderOptions {
    int threads = 0;            // intra-op threads; 0 = all cores (LibTorch here starts with one)
    bool optimize = true;       // torch::jit::optimize_for_inference (freeze + fuse)
    bool warm_up = true;        // two passes at load; a one-off query skips them (its pass warms up)
    // How a float model runs: Float32, or BFloat16 (the network in bf16 with channels-last tensors,
    // oneDNN's AVX512-BF16 kernels): faster where the CPU has them, vectors within about 1% of
    // float32 (measured in the README). A quantized model always runs in int8 on the onednn engine.
    Precision precision = Precision::Float32;
    int input_width = 224;
    int input_height = 224;
};

struct EmbedderLoadTimes {
    double load_seconds = 0;      // torch::jit::load
    double optimize_seconds = 0;  // optimize_for_inference
    double warm_up_seconds = 0;   // the first two passes
};

class Embedder {
public:
    // Loads, optimises and warms up the model; learns its output dimension from a probe batch.
    // Throws cbir::Error naming the file when it is not a TorchScript model with that interface.
    static std::unique_ptr<Embedder> load(const std::filesystem::path& model, const EmbedderOptions& options);
    virtual ~Embedder() = default;

    // Known after the warm-up, or after the first embed() when warm_up is false.
    virtual int dimension() const = 0;
    virtual const EmbedderLoadTimes& load_times() const = 0;
    // How it runs: Int8 for a quantized model, else the requested float precision.
    virtual Precision precision() const = 0;
    // inputs: count * 3 * H * W floats (CHW per image). Returns count * dimension() floats.
    virtual std::vector<float> embed(const float* inputs, int count) = 0;
};

}  // namespace cbir
