#include "embed/embedder.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "embed/torch_plugin.h"
#include "util/error.h"

namespace cbir {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A quantized model's forward graph holds quantized operators (quantized::conv2d, quantize_per_tensor).
bool graph_is_quantized(const torch::jit::Block* block) {
    for (const torch::jit::Node* node : block->nodes()) {
        const std::string kind = node->kind().toQualString();
        if (kind.rfind("quantized::", 0) == 0 || kind.rfind("aten::quantize_per", 0) == 0) return true;
        for (const torch::jit::Block* inner : node->blocks())
            if (graph_is_quantized(inner)) return true;
    }
    return false;
}

// Each module's own forward (a scripted model calls its submodules'; a frozen one has one graph).
bool is_quantized(const torch::jit::Module& module) {
    for (const auto& m : module.modules())
        if (auto forward = m.find_method("forward"); forward && graph_is_quantized(forward->graph()->block()))
            return true;
    return false;
}

// Quantized weights are packed for the engine selected when the model is loaded, so onednn (the
// engine the exporter quantizes for) must be chosen first; LibTorch's default depends on the build.
bool select_onednn_quantized_engine() {
    const auto& engines = at::globalContext().supportedQEngines();
    if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) == engines.end()) return false;
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
    return true;
}

class TorchScriptEmbedder final : public Embedder {
public:
    TorchScriptEmbedder(torch::jit::Module module, const EmbedderOptions& options)
        : module_(std::move(module)), options_(options) {}

    int dimension() const override { return dimension_; }
    Precision precision() const override { return options_.precision; }
    const EmbedderLoadTimes& load_times() const override { return times_; }
    EmbedderLoadTimes times_;

    std::vector<float> embed(const float* inputs, int count) override {
        if (count <= 0) return {};
        // The graph executor's mode is per thread: each embedder sets its own on the thread that runs
        // it (unoptimised, the executor's passes would cost a one-off query 0.05 s; and a server's
        // one-shot embedder must compute what such a query computes).
        torch::jit::setGraphExecutorOptimize(options_.optimize);
        torch::InferenceMode inference;
        // from_blob does not copy; the caller's buffer outlives the call.
        auto batch = torch::from_blob(const_cast<float*>(inputs),
                                      {count, 3, options_.input_height, options_.input_width}, torch::kFloat32);
        if (options_.precision == Precision::BFloat16)
            batch = batch.to(torch::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast);
        torch::Tensor out = module_.forward({batch}).toTensor();
        if (out.dim() != 2 || out.size(0) != count)
            throw Error("model returned a tensor of shape " + shape_text(out) + ", expected [N, D] features");
        out = out.to(torch::kFloat32).contiguous();
        if (dimension_ == 0) dimension_ = static_cast<int>(out.size(1));
        if (out.size(1) != dimension_) throw Error("model changed its output dimension between batches");
        return std::vector<float>(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
    }

    void probe_and_warm_up() {
        // Two passes: the first triggers the profiling executor's specialisation, the second runs it.
        std::vector<float> zeros(static_cast<size_t>(3) * options_.input_width * options_.input_height, 0.0f);
        embed(zeros.data(), 1);
        embed(zeros.data(), 1);
    }

private:
    static std::string shape_text(const torch::Tensor& t) {
        std::string s = "[";
        for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
        return s + "]";
    }

    torch::jit::Module module_;
    EmbedderOptions options_;
    int dimension_ = 0;
};

std::unique_ptr<Embedder> load_torchscript(const std::filesystem::path& model, const EmbedderOptions& options) {
    const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
    EmbedderLoadTimes times;
    auto start = std::chrono::steady_clock::now();
    const bool has_onednn = select_onednn_quantized_engine();
    torch::jit::Module module;
    try {
        module = torch::jit::load(model.string());
    } catch (const c10::Error& e) {
        if (!has_onednn && std::string(e.what_without_backtrace()).find("quantized") != std::string::npos)
            throw Error(model.string() + ": an int8 model needs LibTorch's onednn quantized engine, which this "
                        "LibTorch lacks; use a float model");
        throw Error(model.string() + ": not a loadable TorchScript model (" + e.what_without_backtrace() + ")");
    }
    module.eval();
    EmbedderOptions run = options;
    bool quantized = false;
    try {
        quantized = is_quantized(module);
    } catch (const c10::Error&) {
        // No scripted forward to inspect: the warm-up below reports what is wrong with it.
    }
    if (quantized) {
        if (!has_onednn)
            throw Error(model.string() + ": an int8 model needs LibTorch's onednn quantized engine, which this "
                        "LibTorch lacks; use a float model");
        run.precision = Precision::Int8;  // its arithmetic is fixed by the file; bf16 applies to float models
    }
    if (run.precision == Precision::BFloat16) {
        module.to(torch::kBFloat16);
        // oneDNN's bf16 convolutions are fast only with channels-last weights and inputs.
        for (auto parameter : module.parameters())
            if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(at::MemoryFormat::ChannelsLast));
    }
    times.load_seconds = seconds_since(start);
    start = std::chrono::steady_clock::now();
    // Unoptimised, the graph executor's own optimisation passes would still run on the first call:
    // 0.10 s against 0.05 s for a plain first pass, which is all a one-off query needs (embed() turns
    // them off for such a model).
    if (options.optimize) {
        try {
            module = torch::jit::optimize_for_inference(module);
        } catch (const c10::Error&) {
            // Some scripted models cannot be frozen; they still run unoptimised.
        }
    }
    times.optimize_seconds = seconds_since(start);
    auto embedder = std::make_unique<TorchScriptEmbedder>(std::move(module), run);
    start = std::chrono::steady_clock::now();
    try {
        if (options.warm_up) embedder->probe_and_warm_up();
        times.warm_up_seconds = seconds_since(start);
        embedder->times_ = times;
    } catch (const c10::Error& e) {
        throw Error(model.string() + ": model does not take a [N,3," + std::to_string(options.input_height) + "," +
                    std::to_string(options.input_width) + "] image batch (" + e.what_without_backtrace() + ")");
    }
    return embedder;
}

}  // namespace
}  // namespace cbir

// The plugin's one entry point (C linkage, so dlsym finds it by name). Errors travel as text:
// exceptions do not cross the library boundary.
extern "C" cbir::Embedder* cbir_torch_create_embedder(const char* model_path, const cbir::EmbedderOptions* options,
                                                      char* error, size_t error_size) {
    try {
        return cbir::load_torchscript(model_path, *options).release();
    } catch (const std::exception& e) {
        std::snprintf(error, error_size, "%s", e.what());
    } catch (...) {
        std::snprintf(error, error_size, "unknown error while loading the model");
    }
    return nullptr;
}
