#pragma once
// Which model file to use, and what it is: its sha256 (the store's record of which model built it)
// and whether it is the untrained stand-in whose neighbours mean nothing semantically.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cbir {

struct ModelFile {
    std::filesystem::path path;  // absolute
    std::string sha256;
    bool untrained = false;
};

// Known sha256 of shared/assets/models/resnet18-untrained-features.pt. Re-exports are not
// byte-identical, so the file name is checked too.
inline constexpr const char* kUntrainedResnet18Sha256 =
    "8c7ce75a74f35c6c9b0d3823232285b6c07fb3ffe233766d1b229941813fea9f";

// The default model when no --model is given: $CBIR_MODEL, then the real weights before the
// untrained stand-in, in ./models and in the models/ folder beside the build tree of the binary.
std::optional<std::filesystem::path> find_default_model(const std::filesystem::path& executable_dir);
std::vector<std::filesystem::path> default_model_candidates(const std::filesystem::path& executable_dir);

bool looks_untrained(const std::filesystem::path& path, const std::string& sha256);

}  // namespace cbir
