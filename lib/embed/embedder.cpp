#include "embed/embedder.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <thread>

#include "util/error.h"

namespace cbir {
namespace {

class TorchScriptEmbedder final : public Embedder {
public:
    TorchScriptEmbedder(torch::jit::Module module, const EmbedderOptions& options)
        : module_(std::move(module)), options_(options) {}

    int dimension() const override { return dimension_; }

    std::vector<float> embed(const float* inputs, int count) override {
        if (count <= 0) return {};
        torch::InferenceMode inference;
        // from_blob does not copy; the caller's buffer outlives the call.
        auto batch = torch::from_blob(const_cast<float*>(inputs),
                                      {count, 3, options_.input_height, options_.input_width}, torch::kFloat32);
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

}  // namespace

std::unique_ptr<Embedder> Embedder::load(const std::filesystem::path& model, const EmbedderOptions& options) {
    const int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
    torch::jit::Module module;
    try {
        module = torch::jit::load(model.string());
    } catch (const c10::Error& e) {
        throw Error(model.string() + ": not a loadable TorchScript model (" + e.what_without_backtrace() + ")");
    }
    module.eval();
    if (options.optimize) {
        try {
            module = torch::jit::optimize_for_inference(module);
        } catch (const c10::Error&) {
            // Some scripted models cannot be frozen; they still run unoptimised.
        }
    }
    auto embedder = std::make_unique<TorchScriptEmbedder>(std::move(module), options);
    try {
        embedder->probe_and_warm_up();
    } catch (const c10::Error& e) {
        throw Error(model.string() + ": model does not take a [N,3," + std::to_string(options.input_height) + "," +
                    std::to_string(options.input_width) + "] image batch (" + e.what_without_backtrace() + ")");
    }
    return embedder;
}

}  // namespace cbir
