#pragma once
// `cbir embed`: the feature vectors of images, without a store.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "embed/embedder.h"
#include "image/preprocess.h"

namespace cbir {

struct EmbedFilesOptions {
    std::optional<std::filesystem::path> model;
    std::filesystem::path executable_dir;
    int batch = 8;
    int threads = 0;
    int reader_threads = 0;
    PrecisionRequest precision = PrecisionRequest::Default;  // see embed/precision.h
    PreprocessSpec preprocessing;  // exact, or --fast-decode's (model_resolution.h: preprocessing_for)
};

struct EmbeddedFile {
    std::filesystem::path path;
    std::vector<float> vector;
};

// Walks the inputs like `index` does; returns the vectors in input order. Files that cannot be read
// are reported through on_failure and left out.
std::vector<EmbeddedFile> embed_files(const std::vector<std::filesystem::path>& inputs, const EmbedFilesOptions& options,
                                      const std::function<void(const std::filesystem::path&, const std::string&)>& on_failure);

}  // namespace cbir
