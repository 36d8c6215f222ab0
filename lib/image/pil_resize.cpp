#include "image/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

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

cv::Mat resize_horizontal(const cv::Mat& in, int out_width) {
    const FilterTaps taps = compute_taps(in.cols, out_width);
    cv::Mat out(in.rows, out_width, CV_8UC3);
    for (int y = 0; y < in.rows; ++y) {
        const uint8_t* src = in.ptr<uint8_t>(y);
        uint8_t* dst = out.ptr<uint8_t>(y);
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
