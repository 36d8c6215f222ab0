#include "image/decode.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include <opencv2/imgcodecs.hpp>  // the IMREAD_ flags

#include "image/gif_image.h"
#include "image/heif_isolation.h"
#include "image/codecs.h"
#include "image/decode_budget.h"
#include "image/image_header.h"
#include "image/jpeg_turbo.h"
#include "image/orientation.h"
#include "image/raw_preview.h"
#include "util/byte_text.h"

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

// The formats OpenCV decodes, with their checks: JPEGs through TurboJPEG when `turbo_jpeg` (same
// pixels, a third less time), else OpenCV. `exif_orientation` false leaves the pixels as stored.
DecodedImage decode_opencv_format(const std::string& bytes, ImageFormat format, int reduction, bool exif_orientation,
                                  bool turbo_jpeg) {
    DecodedImage out;
    if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {  // imdecode takes an int length
        out.error = "file of " + std::to_string(bytes.size()) + " bytes is larger than OpenCV decodes";
        return out;
    }
    if (format == ImageFormat::jpeg && !jpeg_has_end_after_last_scan(bytes)) {
        out.error = "truncated JPEG (no end-of-image marker after the last scan)";
        return out;
    }
    if (format == ImageFormat::jpeg) {
        if (const size_t scans = jpeg_scan_count(bytes); scans > kMaxJpegScans) {
            out.error = "JPEG of " + std::to_string(scans) + " scans (at most " + std::to_string(kMaxJpegScans) +
                        ": each is a pass over the whole image)";
            return out;
        }
    }
    // TurboJPEG applies the EXIF orientation itself: a RAW's preview, turned by the RAW's own flag,
    // goes through OpenCV told to ignore it.
    if (turbo_jpeg && exif_orientation && format == ImageFormat::jpeg)
        if (auto decoded = decode_jpeg_turbo(bytes, reduction)) return std::move(*decoded);
    cv::Mat bgr;
    try {
        const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
        // Every IMREAD_*COLOR* mode also applies the EXIF orientation.
        int mode = reduction >= 8   ? cv::IMREAD_REDUCED_COLOR_8
                   : reduction >= 4 ? cv::IMREAD_REDUCED_COLOR_4
                   : reduction >= 2 ? cv::IMREAD_REDUCED_COLOR_2
                                    : cv::IMREAD_COLOR;
        if (!exif_orientation) mode |= cv::IMREAD_IGNORE_ORIENTATION;
        bgr = decode_with_opencv(raw, mode);
    } catch (const cv::Exception& e) {
        out.error = std::string("decoder error: ") + e.what();
        return out;
    }
    if (bgr.empty() || bgr.type() != CV_8UC3) {
        out.error = std::string("not a decodable image (corrupt or unsupported ") + image_format_name(format) + " data)";
        return out;
    }
    swap_red_and_blue(bgr);
    out.rgb = std::move(bgr);
    return out;
}

// A camera RAW's preview: a JPEG through the JPEG path (its header and cap again, its own EXIF
// orientation ignored), then turned by the RAW's orientation.
DecodedImage decode_raw_preview(const std::string& bytes, int reduction) {
    DecodedImage out;
    RawPreview preview = extract_raw_preview(bytes);
    if (!preview.ok()) {
        out.error = preview.error;
        return out;
    }
    if (!preview.jpeg.empty()) {
        const HeaderRead header = read_image_header(preview.jpeg);
        if (header.status != HeaderRead::Status::complete || header.header.format != ImageFormat::jpeg) {
            out.error = "the embedded preview: " + (header.error.empty() ? std::string("not a JPEG") : header.error);
            return out;
        }
        out.error = image_limit_error(header.header);
        if (!out.ok()) return out;
        out = decode_opencv_format(preview.jpeg, ImageFormat::jpeg, reduction, /*exif_orientation=*/false,
                                   /*turbo_jpeg=*/false);
        if (!out.ok()) {
            out.error = "the embedded preview: " + out.error;
            return out;
        }
    } else {
        out.rgb = std::move(preview.rgb);
    }
    apply_exif_orientation(out.rgb, preview.orientation);
    return out;
}

DecodedImage decode_checked(const std::string& bytes, int reduction, bool turbo_jpeg) {
    DecodedImage out;
    if (bytes.empty()) {
        out.error = "empty file";
        return out;
    }
    const HeaderRead header = read_image_header(bytes);
    if (header.status != HeaderRead::Status::complete) {
        out.error = header.error;
        return out;
    }
    out.error = image_limit_error(header.header);
    if (!out.ok()) return out;
    // Held from before the decoder allocates until the caller drops the image.
    auto budget = reserve_decode_pixels(std::max(header.header.pixels(), header.header.buffer_pixels));
    DecodedImage decoded = [&] {
        switch (header.header.format) {
            case ImageFormat::gif: return decode_gif(bytes);
            case ImageFormat::heic:
            case ImageFormat::avif: return decode_heif(bytes, header.header);
            case ImageFormat::camera_raw: return decode_raw_preview(bytes, reduction);
            default:
                return decode_opencv_format(bytes, header.header.format, reduction, /*exif_orientation=*/true, turbo_jpeg);
        }
    }();
    decoded.budget = std::move(budget);
    return decoded;
}

}  // namespace

DecodedImage decode_image_bytes(const std::string& bytes, int reduction) {
    DecodedImage out = decode_checked(bytes, reduction, /*turbo_jpeg=*/true);
    out.error = one_line(out.error);  // the decoders' libraries write messages of several lines
    return out;
}

DecodedImage decode_image_bytes_with_opencv(const std::string& bytes, int reduction) {
    DecodedImage out = decode_checked(bytes, reduction, /*turbo_jpeg=*/false);
    out.error = one_line(out.error);
    return out;
}

bool has_image_extension(const std::filesystem::path& path) {
    // Every format decode_image_bytes reads; the bytes, not the name, then decide how it is read.
    static const std::array<const char*, 21> known = {
        ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
        ".pnm", ".gif", ".heic", ".heif", ".hif", ".avif", ".cr2", ".nef", ".arw", ".dng"};
    std::string ext = path.extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* k : known)
        if (ext == k) return true;
    return false;
}

}  // namespace cbir
