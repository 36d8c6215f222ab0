#pragma once
// The notebook's preprocessing: squash-resize to 224x224, scale to [0,1], normalise with ImageNet
// mean and std, lay out as CHW float32. The name of the recipe is recorded in every store so a
// store is never queried with features computed another way.
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace cbir {

// --fast-decode: a JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT-domain scaling,
// like Pillow's draft()) as long as its shorter side stays at least this many pixels; then resized
// as usual. Chosen by measurement (scripts/measure_fast_decode.py; README, Speed).
inline constexpr int kFastDecodeMinSide = 448;

struct PreprocessSpec {
    int width = 224;
    int height = 224;
    float mean[3] = {0.485f, 0.456f, 0.406f};
    float std[3] = {0.229f, 0.224f, 0.225f};
    // 0: every image decoded at full size (the reference pipeline's features); else --fast-decode's
    // shorter-side floor for JPEGs.
    int fast_decode_min_side = 0;

    // The recipe's name, recorded in the store: "pil-bilinear-224x224-imagenet-norm-v1", with
    // "+jpeg-dct-scaled-min-side-N" under --fast-decode.
    std::string name() const;
    // The spec a recorded name stands for; nullopt for a recipe this cbir does not know.
    static std::optional<PreprocessSpec> from_name(const std::string& name);
    static PreprocessSpec fast_decode() {
        PreprocessSpec spec;
        spec.fast_decode_min_side = kFastDecodeMinSide;
        return spec;
    }
    size_t values_per_image() const { return static_cast<size_t>(3) * width * height; }
};

// The reduction (1, 2, 4 or 8) --fast-decode decodes a width x height JPEG at: the largest whose
// output (libjpeg rounds up) keeps the shorter side >= min_side; 1 when min_side is 0.
int fast_decode_reduction(long long width, long long height, int min_side);

// rgb: CV_8UC3 RGB of any size. Writes spec.values_per_image() floats to out (CHW).
void preprocess_rgb(const cv::Mat& rgb, const PreprocessSpec& spec, float* out);

}  // namespace cbir
