#include "image/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace cbir {
namespace {

// Pillow keeps 22 fractional bits so that 255 * sum(weights) fits in an int32 accumulator.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct FilterTaps {
    int window = 0;             // taps per output sample (the widest window)
    std::vector<int> first;     // first input index of each output sample
    std::vector<int> count;     // taps actually used by each output sample
    std::vector<int32_t> weights;  // window entries per output sample, fixed point
};

double triangle(double x) {
    x = std::fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

FilterTaps compute_taps(int in_size, int out_size) {
    const double scale = static_cast<double>(in_size) / out_size;
    const double filter_scale = std::max(scale, 1.0);
    const double support = 1.0 * filter_scale;  // the triangle filter's support is 1
    FilterTaps taps;
    taps.window = static_cast<int>(std::ceil(support)) * 2 + 1;
    taps.first.resize(out_size);
    taps.count.resize(out_size);
    taps.weights.assign(static_cast<size_t>(out_size) * taps.window, 0);
    std::vector<double> w(taps.window);
    for (int out = 0; out < out_size; ++out) {
        const double center = (out + 0.5) * scale;
        // Truncation toward zero, as the C cast in Pillow does.
        int lo = static_cast<int>(center - support + 0.5);
        int hi = static_cast<int>(center + support + 0.5);
        lo = std::max(lo, 0);
        hi = std::min(hi, in_size);
        const int n = hi - lo;
        double sum = 0.0;
        for (int i = 0; i < n; ++i) {
            w[i] = triangle((i + lo - center + 0.5) / filter_scale);
            sum += w[i];
        }
        for (int i = 0; i < n; ++i) {
            const double normalized = sum != 0.0 ? w[i] / sum : w[i];
            const double fixed = normalized * (1 << kPrecisionBits);
            taps.weights[static_cast<size_t>(out) * taps.window + i] =
                static_cast<int32_t>(fixed < 0 ? std::trunc(fixed - 0.5) : std::trunc(fixed + 0.5));
        }
        taps.first[out] = lo;
        taps.count[out] = n;
    }
    return taps;
}

inline uint8_t round_to_u8(int32_t accumulator) {
    const int32_t v = accumulator >> kPrecisionBits;
    return static_cast<uint8_t>(std::clamp(v, 0, 255));
}

// One row's horizontal pass, as Pillow computes it: per output sample and channel, the int32 sum of
// pixel * weight from half (rounding) up.
[[maybe_unused]] void filter_row_scalar(const uint8_t* src, uint8_t* dst, const FilterTaps& taps, int out_width) {
    for (int x = 0; x < out_width; ++x) {
        const int32_t* k = &taps.weights[static_cast<size_t>(x) * taps.window];
        int32_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
        const uint8_t* p = src + 3 * taps.first[x];
        for (int i = 0; i < taps.count[x]; ++i, p += 3) {
            acc[0] += p[0] * k[i];
            acc[1] += p[1] * k[i];
            acc[2] += p[2] * k[i];
        }
        dst[3 * x + 0] = round_to_u8(acc[0]);
        dst[3 * x + 1] = round_to_u8(acc[1]);
        dst[3 * x + 2] = round_to_u8(acc[2]);
    }
}

#if defined(__AVX2__)
// The same sums, sixteen 16-bit products at a time (vpmaddwd). A weight (< 2^22, never negative)
// is split into its high and low 11 bits, each an int16: sum(p * k) = (sum(p * k_hi) << 11) +
// sum(p * k_lo), exactly, in int32 (|sum| < 2^31 with 8-bit pixels and weights summing to 2^22).
// Integer addition is associative, so the int32 is Pillow's, bit for bit. Four taps per step:
// each 128-bit lane takes two taps' pixels as int16 (R_i, R_i+1, G_i, G_i+1, B_i, B_i+1, 0, 0),
// and the weights are laid out to match, zero past the sample's last tap.
constexpr int kTapsPerStep = 4;
constexpr int kLowBits = 11;

struct ExpandedTaps {
    int steps = 0;                 // steps of the widest window
    std::vector<int16_t> weights;  // per output sample, per step: 16 high parts, then 16 low parts
    std::vector<int> sample_steps; // steps each output sample takes
};

ExpandedTaps expand_taps(const FilterTaps& taps, int out_width) {
    ExpandedTaps e;
    e.steps = (taps.window + kTapsPerStep - 1) / kTapsPerStep;
    e.weights.assign(static_cast<size_t>(out_width) * e.steps * 32, 0);
    e.sample_steps.resize(out_width);
    for (int x = 0; x < out_width; ++x) {
        int16_t* w = &e.weights[static_cast<size_t>(x) * e.steps * 32];
        for (int i = 0; i < taps.count[x]; ++i) {
            const int32_t k = taps.weights[static_cast<size_t>(x) * taps.window + i];
            int16_t* step = w + (i / kTapsPerStep) * 32;
            const int lane = (i % kTapsPerStep) / 2, odd = i % 2;
            for (int c = 0; c < 3; ++c) {
                step[lane * 8 + 2 * c + odd] = static_cast<int16_t>(k >> kLowBits);
                step[16 + lane * 8 + 2 * c + odd] = static_cast<int16_t>(k & ((1 << kLowBits) - 1));
            }
        }
        e.sample_steps[x] = (taps.count[x] + kTapsPerStep - 1) / kTapsPerStep;
    }
    return e;
}

// `src` is readable for 12 * e.steps + 4 bytes past the first pixel of any output sample.
void filter_row_avx2(const uint8_t* src, uint8_t* dst, const FilterTaps& taps, const ExpandedTaps& e, int out_width) {
    const char z = -128;  // pshufb: a zero byte
    const __m256i spread = _mm256_setr_epi8(0, z, 3, z, 1, z, 4, z, 2, z, 5, z, z, z, z, z,
                                            6, z, 9, z, 7, z, 10, z, 8, z, 11, z, z, z, z, z);
    for (int x = 0; x < out_width; ++x) {
        const uint8_t* p = src + 3 * taps.first[x];
        const int16_t* w = &e.weights[static_cast<size_t>(x) * e.steps * 32];
        __m256i high = _mm256_setzero_si256(), low = high;
        for (int s = 0; s < e.sample_steps[x]; ++s, p += 3 * kTapsPerStep, w += 32) {
            const __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
            const __m256i pixels = _mm256_shuffle_epi8(bytes, spread);
            high = _mm256_add_epi32(high, _mm256_madd_epi16(pixels, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w))));
            low = _mm256_add_epi32(low, _mm256_madd_epi16(pixels, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 16))));
        }
        const __m256i sums = _mm256_add_epi32(_mm256_slli_epi32(high, kLowBits), low);
        const __m128i rgb = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        alignas(16) int32_t lanes[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(lanes), rgb);
        for (int c = 0; c < 3; ++c) dst[3 * x + c] = round_to_u8(lanes[c] + (1 << (kPrecisionBits - 1)));
    }
}
#endif

cv::Mat resize_horizontal(const cv::Mat& in, int out_width) {
    const FilterTaps taps = compute_taps(in.cols, out_width);
    cv::Mat out(in.rows, out_width, CV_8UC3);
#if defined(__AVX2__)
    // Each row is copied into a buffer with zero padding behind it, so that whole steps can be
    // read at the right edge (the padding meets zero weights).
    const ExpandedTaps expanded = expand_taps(taps, out_width);
    const size_t row_bytes = static_cast<size_t>(in.cols) * 3;
    std::vector<uint8_t> row(row_bytes + 3 * kTapsPerStep * expanded.steps + 16, 0);
    for (int y = 0; y < in.rows; ++y) {
        std::memcpy(row.data(), in.ptr<uint8_t>(y), row_bytes);
        filter_row_avx2(row.data(), out.ptr<uint8_t>(y), taps, expanded, out_width);
    }
#else
    for (int y = 0; y < in.rows; ++y) filter_row_scalar(in.ptr<uint8_t>(y), out.ptr<uint8_t>(y), taps, out_width);
#endif
    return out;
}

cv::Mat resize_vertical(const cv::Mat& in, int out_height) {
    const FilterTaps taps = compute_taps(in.rows, out_height);
    cv::Mat out(out_height, in.cols, CV_8UC3);
    const int row_values = in.cols * 3;
    std::vector<int32_t> acc(static_cast<size_t>(row_values));
    for (int y = 0; y < out_height; ++y) {
        std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
        const int32_t* k = &taps.weights[static_cast<size_t>(y) * taps.window];
        for (int i = 0; i < taps.count[y]; ++i) {
            const uint8_t* src = in.ptr<uint8_t>(taps.first[y] + i);
            const int32_t weight = k[i];
            for (int v = 0; v < row_values; ++v) acc[v] += src[v] * weight;
        }
        uint8_t* dst = out.ptr<uint8_t>(y);
        for (int v = 0; v < row_values; ++v) dst[v] = round_to_u8(acc[v]);
    }
    return out;
}

}  // namespace

cv::Mat resize_like_pil_bilinear(const cv::Mat& rgb, int out_width, int out_height) {
    CV_Assert(rgb.type() == CV_8UC3 && out_width > 0 && out_height > 0);
    // Pillow skips a pass whose size does not change; the horizontal pass runs first.
    cv::Mat current = rgb;
    if (rgb.cols != out_width) current = resize_horizontal(current, out_width);
    if (rgb.rows != out_height) current = resize_vertical(current, out_height);
    if (current.data == rgb.data) current = rgb.clone();
    return current;
}

}  // namespace cbir
