#pragma once
// Reads an image's pixel size from its header, before anything is decoded, so that a
// decompression bomb (a small file that claims gigapixels) is refused instead of allocated.
// OpenCV has its own cap (CV_IO_MAX_IMAGE_PIXELS) but reads it once when the library loads, and its
// default, 2^30 pixels, lets a 3 GB buffer through.
#include <optional>
#include <string>

namespace cbir {

struct ImageSize {
    long long width = 0;
    long long height = 0;
};

// JPEG (SOF marker), PNG (IHDR), GIF, BMP and WebP; nullopt for other or unreadable headers.
std::optional<ImageSize> read_image_size(const std::string& bytes);

// The usual file extension of the image format the bytes start with (".jpg", ".png", ".bmp",
// ".tif", ".webp", ".ppm", ".gif"), or ".img" when none is recognised.
std::string image_extension(const std::string& bytes);

}  // namespace cbir
