#include "bench/synthetic.h"

#include <random>

namespace cbir {

std::vector<float> synthetic_features(size_t count, int dimension, unsigned seed, int clusters) {
    constexpr int kLatent = 8;
    std::mt19937 basis_rng(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> centres(static_cast<size_t>(clusters) * dimension), directions(centres.size() * kLatent);
    for (auto& v : centres) v = 1.0f + 0.5f * normal(basis_rng);
    for (auto& v : directions) v = 0.15f * normal(basis_rng);
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> pick(0, clusters - 1);
    std::vector<float> out(count * dimension);
    for (size_t i = 0; i < count; ++i) {
        const size_t cluster = static_cast<size_t>(pick(rng));
        float* v = &out[i * dimension];
        for (int d = 0; d < dimension; ++d) v[d] = centres[cluster * dimension + d] + 0.02f * normal(rng);
        for (int l = 0; l < kLatent; ++l) {
            const float w = normal(rng);
            const float* dir = &directions[(cluster * kLatent + l) * dimension];
            for (int d = 0; d < dimension; ++d) v[d] += w * dir[d];
        }
    }
    return out;
}

}  // namespace cbir
