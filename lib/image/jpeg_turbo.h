#pragma once
// JPEG decoding through libjpeg-turbo's TurboJPEG API: straight into an RGB buffer, with the same
// accurate IDCT and fancy upsampling OpenCV's imdecode asks libjpeg for, so the pixels are the same
// (tests/test_decode.cpp) without OpenCV's per-row RGB to BGR copy and cbir's swap back. The caller
// (decode.cpp) has already checked the header against the limits, the end-of-image marker and the
// number of scans.
#include <optional>
#include <string>

#include "image/decode.h"

namespace cbir {

// reduction 1, 2, 4 or 8: libjpeg's DCT-domain scaling, as OpenCV's IMREAD_REDUCED_COLOR_N. EXIF
// orientation applied (image/exif_orientation.h). nullopt when this path does not take the image
// (CMYK and YCCK JPEGs, which OpenCV converts itself); a DecodedImage with an error when it is corrupt.
std::optional<DecodedImage> decode_jpeg_turbo(const std::string& bytes, int reduction = 1);

}  // namespace cbir
