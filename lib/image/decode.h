#pragma once
// Decodes an image to 8-bit RGB. Failures are values, not exceptions: a corrupt image is a normal
// event in a photo folder, and the indexer skips it with the reason.
#include <filesystem>
#include <memory>
#include <string>

#include <opencv2/core.hpp>

#include "image/limits.h"

namespace cbir {

struct DecodedImage {
    cv::Mat rgb;        // CV_8UC3, RGB order, EXIF orientation applied; empty on failure
    std::string error;  // why decoding failed; empty on success
    // The pixels this image holds from the process's decode budget (decode_budget.h), returned when
    // the image (the last copy of it) is gone.
    std::shared_ptr<const void> budget;
    bool ok() const { return error.empty(); }
};

// Bytes are decoded only when their header (image_header.h) is read and within the limits
// (limits.h). Through OpenCV: PNG, TIFF (the first page), WebP, BMP and PBM/PGM/PPM, and CMYK
// JPEGs; other JPEGs through TurboJPEG (jpeg_turbo.h); through cbir's own readers: GIF (giflib,
// the first frame), HEIC and AVIF (libheif) and camera RAW (libraw's embedded preview, then the
// JPEG path). reduction 2, 4 or 8 decodes at that fraction of the size (JPEG and a RAW's JPEG
// preview: DCT scaling, a fraction of a full decode's cost; the other readers ignore it); features
// are computed from full decodes unless the recipe asks for --fast-decode (preprocess.h).
DecodedImage decode_image_bytes(const std::string& bytes, int reduction = 1);
// The same checks, then OpenCV's imdecode for every format: the path JPEGs took before TurboJPEG,
// for the tests and benchmarks that compare the two.
DecodedImage decode_image_bytes_with_opencv(const std::string& bytes, int reduction = 1);

// The file extensions the folder walk picks up (lower case, with the dot).
bool has_image_extension(const std::filesystem::path& path);

}  // namespace cbir
