#include "pipeline/embed_files.h"

#include "embed/embedder.h"
#include "pipeline/embedding_pipeline.h"
#include "pipeline/model_resolution.h"
#include "pipeline/precision_choice.h"
#include "pipeline/walk.h"

namespace cbir {

std::vector<EmbeddedFile> embed_files(const std::vector<std::filesystem::path>& inputs, const EmbedFilesOptions& options,
                                      const std::function<void(const std::filesystem::path&, const std::string&)>& on_failure) {
    const auto files = collect_image_files(inputs, [&](const WalkProblem& p) { on_failure(p.path, p.reason); });
    if (files.empty()) return {};
    const ModelFile model = model_for_new_store(options.model, options.executable_dir);
    warn_if_untrained(model);
    EmbedderOptions embedder_options;
    embedder_options.threads = options.threads;
    auto embedder = load_embedder(model.path, embedder_options, options.precision, nullptr);

    std::vector<std::optional<std::vector<float>>> vectors(files.size());
    PipelineOptions pipeline;
    pipeline.batch = options.batch;
    pipeline.reader_threads = options.reader_threads;
    PipelineCallbacks callbacks;
    callbacks.on_failure = [&](size_t i, const std::string& reason) { on_failure(files[i], reason); };
    callbacks.on_batch = [&](const std::vector<size_t>& indices, const std::vector<PreparedImage>&,
                             const std::vector<float>& batch_vectors, int dimension) {
        for (size_t b = 0; b < indices.size(); ++b)
            vectors[indices[b]] = std::vector<float>(batch_vectors.begin() + static_cast<long>(b) * dimension,
                                                     batch_vectors.begin() + static_cast<long>(b + 1) * dimension);
    };
    run_embedding_pipeline(files, *embedder, options.preprocessing, pipeline, callbacks);

    std::vector<EmbeddedFile> out;
    for (size_t i = 0; i < files.size(); ++i)
        if (vectors[i]) out.push_back({files[i], std::move(*vectors[i])});
    return out;
}

}  // namespace cbir
