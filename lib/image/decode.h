#pragma once
// Reads an image file and decodes it to 8-bit RGB. Failures are values, not exceptions: a corrupt
// image is a normal event in a photo folder, and the indexer skips it with the reason.
#include <filesystem>
#include <string>

#include <opencv2/core.hpp>

namespace cbir {

struct DecodedImage {
    cv::Mat rgb;        // CV_8UC3, RGB order, EXIF orientation applied; empty on failure
    std::string error;  // why decoding failed; empty on success
    bool ok() const { return error.empty(); }
};

// Images above this many pixels are refused before decoding (a 24 MP photo has 24e6; the cap
// leaves room for large panoramas and stops decompression bombs). Override with $CBIR_MAX_PIXELS.
inline constexpr long long kDefaultMaxPixels = 250'000'000;
long long max_image_pixels();

// reduction 2, 4 or 8 decodes at that fraction of the size (JPEG: libjpeg's DCT scaling, a fraction
// of a full decode's cost); features are always computed from full decodes (reduction 1).
DecodedImage decode_image_bytes(const std::string& bytes, int reduction = 1);

// The file extensions the folder walk picks up (lower case, with the dot).
bool has_image_extension(const std::filesystem::path& path);

}  // namespace cbir
