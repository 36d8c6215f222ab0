#include "image/decode.h"

#include "image/image_header.h"

#include <array>

#include <cstdlib>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace cbir {
namespace {

bool is_jpeg(const std::string& bytes) {
    return bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
           static_cast<unsigned char>(bytes[1]) == 0xD8 && static_cast<unsigned char>(bytes[2]) == 0xFF;
}

// libjpeg only warns on a truncated file and OpenCV then returns an image padded with grey, which
// would be embedded as if it were the photo. Outside entropy-coded data 0xFF is always stuffed, so
// the last start-of-scan marker (FF DA) must be followed by an end-of-image marker (FF D9).
bool jpeg_has_end_after_last_scan(const std::string& bytes) {
    size_t last_scan = std::string::npos;
    for (size_t i = bytes.size(); i-- > 1;) {
        if (static_cast<unsigned char>(bytes[i - 1]) == 0xFF && static_cast<unsigned char>(bytes[i]) == 0xDA) {
            last_scan = i;
            break;
        }
    }
    if (last_scan == std::string::npos) return false;
    for (size_t i = last_scan + 1; i + 1 < bytes.size(); ++i) {
        if (static_cast<unsigned char>(bytes[i]) == 0xFF && static_cast<unsigned char>(bytes[i + 1]) == 0xD9) return true;
    }
    return false;
}

}  // namespace

long long max_image_pixels() {
    static const long long limit = [] {
        const char* env = std::getenv("CBIR_MAX_PIXELS");
        const long long value = env ? std::atoll(env) : 0;
        return value > 0 ? value : kDefaultMaxPixels;
    }();
    return limit;
}

DecodedImage decode_image_bytes(const std::string& bytes, int reduction) {
    DecodedImage out;
    if (bytes.empty()) {
        out.error = "empty file";
        return out;
    }
    if (auto size = read_image_size(bytes)) {
        if (size->width <= 0 || size->height <= 0) {
            out.error = "header gives no image size";
            return out;
        }
        if (size->width * size->height > max_image_pixels()) {
            out.error = "image is " + std::to_string(size->width) + "x" + std::to_string(size->height) +
                        " pixels, above the limit of " + std::to_string(max_image_pixels()) +
                        " (a decompression bomb? raise CBIR_MAX_PIXELS to allow it)";
            return out;
        }
    }
    if (is_jpeg(bytes) && !jpeg_has_end_after_last_scan(bytes)) {
        out.error = "truncated JPEG (no end-of-image marker after the last scan)";
        return out;
    }
    cv::Mat bgr;
    try {
        const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
        // Every IMREAD_*COLOR* mode also applies the EXIF orientation.
        const int mode = reduction >= 8   ? cv::IMREAD_REDUCED_COLOR_8
                         : reduction >= 4 ? cv::IMREAD_REDUCED_COLOR_4
                         : reduction >= 2 ? cv::IMREAD_REDUCED_COLOR_2
                                          : cv::IMREAD_COLOR;
        bgr = cv::imdecode(raw, mode);
    } catch (const cv::Exception& e) {
        out.error = std::string("decoder error: ") + e.what();
        return out;
    }
    if (bgr.empty()) {
        const bool gif = bytes.size() >= 6 && (bytes.compare(0, 6, "GIF87a") == 0 || bytes.compare(0, 6, "GIF89a") == 0);
        out.error = gif ? "GIF is not supported (this OpenCV has no GIF decoder); convert it to PNG"
                        : "not a decodable image (unknown format or corrupt data)";
        return out;
    }
    cv::cvtColor(bgr, out.rgb, cv::COLOR_BGR2RGB);
    return out;
}

bool has_image_extension(const std::filesystem::path& path) {
    // GIF is walked so that its files are reported (OpenCV 4.6 has no GIF decoder), not silently missed.
    static const std::array<const char*, 10> known = {".jpg", ".jpeg", ".jpe", ".png", ".bmp",
                                                      ".tif", ".tiff", ".webp", ".ppm", ".gif"};
    std::string ext = path.extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* k : known)
        if (ext == k) return true;
    return false;
}

}  // namespace cbir
