#pragma once
// The notebook's preprocessing: squash-resize to 224x224, scale to [0,1], normalise with ImageNet
// mean and std, lay out as CHW float32. The name of the recipe is recorded in every store so a
// store is never queried with features computed another way.
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace cbir {

struct PreprocessSpec {
    int width = 224;
    int height = 224;
    float mean[3] = {0.485f, 0.456f, 0.406f};
    float std[3] = {0.229f, 0.224f, 0.225f};
    static const char* name() { return "pil-bilinear-224x224-imagenet-norm-v1"; }
    size_t values_per_image() const { return static_cast<size_t>(3) * width * height; }
};

// rgb: CV_8UC3 RGB of any size. Writes spec.values_per_image() floats to out (CHW).
void preprocess_rgb(const cv::Mat& rgb, const PreprocessSpec& spec, float* out);

}  // namespace cbir
