#include "image/preprocess.h"

#include "image/pil_resize.h"

namespace cbir {

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
