#include "image/decode.h"

#include <array>
#include <limits>
#include <utility>

#include <opencv2/imgcodecs.hpp>

#include "image/image_header.h"
#include "image/jpeg_turbo.h"

namespace cbir {
namespace {

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

// Each scan of a progressive JPEG is a pass over every block of the image, and a scan can be ten
// bytes with no data: a 325 KB file of 20,000 empty scans took 99 s of CPU. Encoders write about ten
// (libjpeg's progression) to twenty (mozjpeg); an embedded EXIF thumbnail adds its own.
constexpr size_t kMaxJpegScans = 100;

// Start-of-scan markers (FF DA): outside entropy-coded data 0xFF is stuffed, so each is a scan (or one
// of an embedded thumbnail's).
size_t jpeg_scan_count(const std::string& bytes) {
    size_t scans = 0;
    for (size_t i = 1; i < bytes.size(); ++i)
        if (static_cast<unsigned char>(bytes[i]) == 0xDA && static_cast<unsigned char>(bytes[i - 1]) == 0xFF) ++scans;
    return scans;
}

// BGR to RGB where the pixels are: cv::cvtColor would hold a second copy of the image.
void swap_red_and_blue(cv::Mat& bgr) {
    for (int y = 0; y < bgr.rows; ++y) {
        auto* p = bgr.ptr<unsigned char>(y);
        for (int x = 0; x < bgr.cols; ++x, p += 3) std::swap(p[0], p[2]);
    }
}

// The checks every decode meets, then the decoder: TurboJPEG for JPEGs when `turbo_jpeg`, else OpenCV.
DecodedImage decode_checked(const std::string& bytes, int reduction, bool turbo_jpeg) {
    DecodedImage out;
    if (bytes.empty()) {
        out.error = "empty file";
        return out;
    }
    if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {  // imdecode takes an int length
        out.error = "file of " + std::to_string(bytes.size()) + " bytes is larger than OpenCV decodes";
        return out;
    }
    const HeaderRead header = read_image_header(bytes);
    if (header.status != HeaderRead::Status::complete) {
        out.error = header.error;
        return out;
    }
    out.error = image_limit_error(header.header);
    if (!out.ok()) return out;
    if (header.header.format == ImageFormat::jpeg && !jpeg_has_end_after_last_scan(bytes)) {
        out.error = "truncated JPEG (no end-of-image marker after the last scan)";
        return out;
    }
    if (header.header.format == ImageFormat::jpeg) {
        if (const size_t scans = jpeg_scan_count(bytes); scans > kMaxJpegScans) {
            out.error = "JPEG of " + std::to_string(scans) + " scans (at most " + std::to_string(kMaxJpegScans) +
                        ": each is a pass over the whole image)";
            return out;
        }
    }
    if (turbo_jpeg && header.header.format == ImageFormat::jpeg)
        if (auto decoded = decode_jpeg_turbo(bytes, reduction)) return std::move(*decoded);
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
    if (bgr.empty() || bgr.type() != CV_8UC3) {
        out.error = std::string("not a decodable image (corrupt or unsupported ") + image_format_name(header.header.format) + " data)";
        return out;
    }
    swap_red_and_blue(bgr);
    out.rgb = std::move(bgr);
    return out;
}

}  // namespace

DecodedImage decode_image_bytes(const std::string& bytes, int reduction) {
    return decode_checked(bytes, reduction, /*turbo_jpeg=*/true);
}

DecodedImage decode_image_bytes_with_opencv(const std::string& bytes, int reduction) {
    return decode_checked(bytes, reduction, /*turbo_jpeg=*/false);
}

bool has_image_extension(const std::filesystem::path& path) {
    // GIF is walked so that its files are reported (OpenCV 4.6 has no GIF decoder), not silently missed.
    static const std::array<const char*, 13> known = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff",
                                                      ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".gif"};
    std::string ext = path.extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* k : known)
        if (ext == k) return true;
    return false;
}

}  // namespace cbir
