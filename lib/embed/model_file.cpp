#include "embed/model_file.h"

#include <cstdlib>

namespace cbir {

std::vector<std::filesystem::path> default_model_candidates(const std::filesystem::path& executable_dir) {
    std::vector<std::filesystem::path> out;
    if (const char* env = std::getenv("CBIR_MODEL"); env && *env) out.emplace_back(env);
    const char* names[] = {"resnet18-imagenet-features.pt", "resnet18-untrained-features.pt"};
    std::vector<std::filesystem::path> folders = {std::filesystem::current_path() / "models"};
    if (!executable_dir.empty()) {
        // build/apps/cbir -> <repo>/models; <prefix>/bin/cbir -> <prefix>/share/cbir/models
        folders.push_back(executable_dir / ".." / "models");
        folders.push_back(executable_dir / ".." / ".." / "models");
        folders.push_back(executable_dir / ".." / "share" / "cbir" / "models");
    }
    for (const char* name : names)
        for (const auto& folder : folders) out.push_back(folder / name);
    return out;
}

std::optional<std::filesystem::path> find_default_model(const std::filesystem::path& executable_dir) {
    std::error_code ec;
    for (const auto& candidate : default_model_candidates(executable_dir))
        if (std::filesystem::is_regular_file(candidate, ec))
            return std::filesystem::absolute(candidate).lexically_normal();
    return std::nullopt;
}

bool looks_untrained(const std::filesystem::path& path, const std::string& sha256) {
    const std::string name = path.filename().string();
    return sha256 == kUntrainedResnet18Sha256 || name.find("untrained") != std::string::npos ||
           name.find("random-init") != std::string::npos;
}

}  // namespace cbir
