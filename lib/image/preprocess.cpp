#include "image/preprocess.h"

#include <algorithm>

#include "image/pil_resize.h"

namespace cbir {
namespace {

constexpr const char* kExactRecipe = "pil-bilinear-224x224-imagenet-norm-v1";
constexpr const char* kFastDecodeSuffix = "+jpeg-dct-scaled-min-side-";

}  // namespace

std::string PreprocessSpec::name() const {
    std::string out = kExactRecipe;
    if (fast_decode_min_side > 0) out += kFastDecodeSuffix + std::to_string(fast_decode_min_side);
    return out;
}

std::optional<PreprocessSpec> PreprocessSpec::from_name(const std::string& name) {
    // Only the recipes this cbir computes: a store made by another floor is refused, not approximated.
    for (const PreprocessSpec& spec : {PreprocessSpec{}, PreprocessSpec::fast_decode()})
        if (spec.name() == name) return spec;
    return std::nullopt;
}

int fast_decode_reduction(long long width, long long height, int min_side) {
    if (min_side <= 0) return 1;
    const long long shorter = std::min(width, height);
    int reduction = 1;
    while (reduction < 8 && (shorter + reduction * 2 - 1) / (reduction * 2) >= min_side) reduction *= 2;
    return reduction;
}

void preprocess_rgb(const cv::Mat& rgb, const PreprocessSpec& spec, float* out) {
    const cv::Mat resized = resize_like_pil_bilinear(rgb, spec.width, spec.height);
    const size_t plane = static_cast<size_t>(spec.width) * spec.height;
    for (int y = 0; y < spec.height; ++y) {
        const uint8_t* row = resized.ptr<uint8_t>(y);
        for (int x = 0; x < spec.width; ++x) {
            const size_t at = static_cast<size_t>(y) * spec.width + x;
            for (int c = 0; c < 3; ++c) {
                // Same float32 operations as ToTensor (v / 255) then Normalize ((x - mean) / std).
                const float unit = static_cast<float>(row[3 * x + c]) / 255.0f;
                out[c * plane + at] = (unit - spec.mean[c]) / spec.std[c];
            }
        }
    }
}

}  // namespace cbir
