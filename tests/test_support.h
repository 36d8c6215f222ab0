#pragma once
// Where the tests find their real inputs, and small helpers shared by them.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace cbir::test {

std::filesystem::path source_dir();
std::filesystem::path models_dir();   // <repo>/models, filled by scripts/fetch-assets.sh
std::filesystem::path seed_dir();     // <repo>/images (the seven sample photos)
std::filesystem::path untrained_model();
// Corel-1K images folder, or empty when neither $CBIR_ASSETS nor ../shared/assets has it.
std::filesystem::path corel_dir();

// name -> features, from reference-seed-features-untrained.tsv
std::map<std::string, std::vector<float>> reference_seed_features();

// A fresh empty directory under the system temp dir, removed when the object goes away.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

double relative_l2_error(const std::vector<float>& value, const std::vector<float>& reference);

}  // namespace cbir::test
