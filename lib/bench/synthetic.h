#pragma once
// Synthetic vectors shaped like image features: clusters with a low intrinsic dimension (a few
// directions of spread each) plus a little noise, positive-offset like ReLU features. Uniform random
// vectors would make every ANN index look bad and every recall figure meaningless.
#include <cstddef>
#include <vector>

namespace cbir {

// count x dimension floats. The clusters depend only on (dimension, clusters); `seed` picks the
// points, so base vectors and queries drawn with different seeds share the clusters.
std::vector<float> synthetic_features(size_t count, int dimension, unsigned seed, int clusters = 100);

}  // namespace cbir
