#include "test_support.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace cbir::test {

std::filesystem::path source_dir() { return CBIR_SOURCE_DIR; }
std::filesystem::path models_dir() { return source_dir() / "models"; }
std::filesystem::path seed_dir() { return source_dir() / "images"; }
std::filesystem::path untrained_model() {
    auto p = models_dir() / "resnet18-untrained-features.pt";
    if (!std::filesystem::exists(p)) throw std::runtime_error(p.string() + " missing: run ./scripts/fetch-assets.sh");
    return p;
}

std::filesystem::path corel_dir() {
    std::vector<std::filesystem::path> roots;
    if (const char* env = std::getenv("CBIR_ASSETS"); env && *env) roots.emplace_back(env);
    roots.push_back(source_dir() / ".." / "shared" / "assets");
    for (const auto& root : roots) {
        auto dir = root / "datasets" / "corel1k" / "images";
        if (std::filesystem::is_directory(dir)) return dir;
    }
    return {};
}

std::map<std::string, std::vector<float>> reference_seed_features() {
    std::ifstream in(models_dir() / "reference-seed-features-untrained.tsv");
    if (!in) throw std::runtime_error("reference features missing: run ./scripts/fetch-assets.sh");
    std::map<std::string, std::vector<float>> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        std::string name;
        std::getline(fields, name, '\t');
        std::vector<float> values;
        for (std::string v; std::getline(fields, v, '\t');) values.push_back(std::stof(v));
        out[name] = values;
    }
    return out;
}

TempDir::TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("cbir-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
}
TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

double relative_l2_error(const std::vector<float>& value, const std::vector<float>& reference) {
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < reference.size(); ++i) {
        diff += (double(value[i]) - reference[i]) * (double(value[i]) - reference[i]);
        norm += double(reference[i]) * reference[i];
    }
    return std::sqrt(diff / norm);
}

}  // namespace cbir::test
