#include "index/sq8_space.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "index/index_file.h"

namespace cbir {
namespace {

#ifdef __AVX2__
float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
__m256 widen(const uint8_t* at) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(at))));
}
#endif

// Built for x86-64-v3 (lib/CMakeLists.txt): eight codes widened to floats per step, two sums in
// flight; plain loops elsewhere.
float sq8_l2(const void* a, const void* b, const void* param) {
    const auto* p = static_cast<const Sq8Distance*>(param);
    const auto* x = static_cast<const uint8_t*>(a);
    const auto* y = static_cast<const uint8_t*>(b);
    const float* w = p->weight.data();
    const size_t d = p->dimension;
    size_t i = 0;
    float sum = 0;
#ifdef __AVX2__
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; i + 16 <= d; i += 16) {
        const __m256 d0 = _mm256_sub_ps(widen(x + i), widen(y + i));
        const __m256 d1 = _mm256_sub_ps(widen(x + i + 8), widen(y + i + 8));
        s0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i), d0), d0, s0);
        s1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i + 8), d1), d1, s1);
    }
    sum = horizontal_sum(_mm256_add_ps(s0, s1));
#endif
    for (; i < d; ++i) {
        const float diff = static_cast<float>(static_cast<int>(x[i]) - static_cast<int>(y[i]));
        sum += w[i] * diff * diff;
    }
    return sum;
}

// (m + s a) . (m + s b) = sum m^2 + sum m s (a + b) + sum s^2 a b
float sq8_ip(const void* a, const void* b, const void* param) {
    const auto* p = static_cast<const Sq8Distance*>(param);
    const auto* x = static_cast<const uint8_t*>(a);
    const auto* y = static_cast<const uint8_t*>(b);
    const float* w = p->weight.data();
    const float* c = p->cross.data();
    const size_t d = p->dimension;
    size_t i = 0;
    float sum = 0;
#ifdef __AVX2__
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; i + 8 <= d; i += 8) {
        const __m256 xa = widen(x + i), yb = widen(y + i);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(c + i), _mm256_add_ps(xa, yb), s0);
        s1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i), xa), yb, s1);
    }
    sum = horizontal_sum(_mm256_add_ps(s0, s1));
#endif
    for (; i < d; ++i) {
        const float xa = static_cast<float>(x[i]), yb = static_cast<float>(y[i]);
        sum += c[i] * (xa + yb) + w[i] * xa * yb;
    }
    return 1.0f - (p->constant + sum);
}

}  // namespace

ScalarQuantizer::ScalarQuantizer(int dimension) : minimum_(static_cast<size_t>(dimension), -1.0f), step_(static_cast<size_t>(dimension), 2.0f / 255) {}

void ScalarQuantizer::train(const float* vectors, size_t count) {
    const size_t d = minimum_.size();
    if (count == 0) return;
    std::vector<float> lo(d, std::numeric_limits<float>::infinity()), hi(d, -std::numeric_limits<float>::infinity());
    for (size_t n = 0; n < count; ++n)
        for (size_t i = 0; i < d; ++i) {
            const float v = vectors[n * d + i];
            if (!std::isfinite(v)) continue;
            lo[i] = std::min(lo[i], v);
            hi[i] = std::max(hi[i], v);
        }
    for (size_t i = 0; i < d; ++i) {
        if (!(lo[i] <= hi[i])) lo[i] = hi[i] = 0;
        // A little room beyond the sample: vectors added later clamp less often.
        const float margin = 0.02f * (hi[i] - lo[i]);
        minimum_[i] = lo[i] - margin;
        step_[i] = std::max((hi[i] - lo[i] + 2 * margin) / 255.0f, 1e-12f);
    }
}

void ScalarQuantizer::encode(const float* vector, uint8_t* code) const {
    for (size_t i = 0; i < minimum_.size(); ++i) {
        const float q = std::nearbyint((vector[i] - minimum_[i]) / step_[i]);
        code[i] = static_cast<uint8_t>(q >= 255.0f ? 255.0f : (q > 0.0f ? q : 0.0f));  // NaN -> 0
    }
}

std::string ScalarQuantizer::serialize() const {
    std::string out(serialized_size(dimension()), '\0');
    std::memcpy(&out[0], minimum_.data(), 4 * minimum_.size());
    std::memcpy(&out[4 * minimum_.size()], step_.data(), 4 * step_.size());
    return out;
}

void ScalarQuantizer::deserialize(const unsigned char* bytes, size_t size, const std::string& name) {
    if (size != serialized_size(dimension())) throw IndexFileError(name + ": SQ8 quantizer is truncated or damaged");
    std::memcpy(minimum_.data(), bytes, 4 * minimum_.size());
    std::memcpy(step_.data(), bytes + 4 * minimum_.size(), 4 * step_.size());
    for (size_t i = 0; i < minimum_.size(); ++i)
        if (!std::isfinite(minimum_[i]) || !std::isfinite(step_[i]) || !(step_[i] > 0) || std::abs(minimum_[i]) > 1e30f ||
            step_[i] > 1e30f)
            throw IndexFileError(name + ": SQ8 quantizer is damaged");
}

Sq8Distance::Sq8Distance(const ScalarQuantizer& quantizer, Metric metric) {
    const size_t d = static_cast<size_t>(quantizer.dimension());
    dimension = d;
    weight.resize(d);
    cross.resize(d);
    for (size_t i = 0; i < d; ++i) {
        const float m = quantizer.minimum()[i], s = quantizer.step()[i];
        weight[i] = s * s;
        cross[i] = m * s;
        constant += m * m;
    }
    function = metric == Metric::L2 ? &sq8_l2 : &sq8_ip;
}

}  // namespace cbir
