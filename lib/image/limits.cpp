#include "image/limits.h"

#include <cstdlib>

#include "util/read_file.h"

namespace cbir {
namespace {

long long positive_env(const char* name) {
    const char* text = std::getenv(name);
    const long long value = text ? std::atoll(text) : 0;
    return value > 0 ? value : 0;
}

std::string dimensions(long long width, long long height) {
    return std::to_string(width) + "\u00d7" + std::to_string(height);
}

}  // namespace

long long max_image_pixels() {
    static const long long limit = [] {
        const long long value = positive_env("CBIR_MAX_PIXELS");
        return value > 0 ? value : kDefaultMaxPixels;
    }();
    return limit;
}

uint64_t max_image_file_bytes() {
    static const uint64_t limit = [] {
        const long long value = positive_env("CBIR_MAX_FILE_BYTES");
        if (value > 0) return static_cast<uint64_t>(value);
        const uint64_t pixels = static_cast<uint64_t>(max_image_pixels());
        if (pixels > (UINT64_MAX - kFileMetadataBytes) / kFileBytesPerPixel) return UINT64_MAX;
        return pixels * kFileBytesPerPixel + kFileMetadataBytes;
    }();
    return limit;
}

std::string image_limit_error(const ImageHeader& header) {
    const long long limit = max_image_pixels();
    if (header.pixels() > limit)
        return "image of " + dimensions(header.width, header.height) + " pixels exceeds the limit of " +
               std::to_string(limit) + " (CBIR_MAX_PIXELS; a decompression bomb?)";
    if (header.buffer_pixels > limit)
        return "a " + std::string(image_format_name(header.format)) + " tile (or strip) of " +
               std::to_string(header.buffer_pixels) + " pixels exceeds the limit of " + std::to_string(limit) +
               " (CBIR_MAX_PIXELS; the decoder allocates one whole, however small the image)";
    return {};
}

std::string file_size_limit_error(uint64_t size) {
    if (size <= max_image_file_bytes()) return {};
    return file_too_large_message(size, max_image_file_bytes()) + " (CBIR_MAX_FILE_BYTES)";
}

}  // namespace cbir
