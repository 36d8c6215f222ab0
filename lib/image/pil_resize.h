#pragma once
// Resize that reproduces Pillow's Image.resize(..., BILINEAR) as torchvision's Resize calls it: a
// separable triangle filter whose support widens with the downscale factor (antialiasing), 8-bit
// fixed-point coefficients, and a uint8 rounding after the horizontal and after the vertical pass.
// OpenCV's INTER_LINEAR does not antialias and INTER_AREA is a box filter; both drift from the
// features the reference notebook computes (see tests/test_preprocess.cpp).
#include <opencv2/core.hpp>

namespace cbir {

// rgb: CV_8UC3 (any channel order). Returns a new CV_8UC3 image of out_width x out_height.
cv::Mat resize_like_pil_bilinear(const cv::Mat& rgb, int out_width, int out_height);

}  // namespace cbir
