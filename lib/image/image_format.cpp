#include "image/image_format.h"

#include <webp/decode.h>

namespace cbir {
namespace {

bool starts_with(std::string_view bytes, std::string_view magic) {
    return bytes.size() >= magic.size() && bytes.compare(0, magic.size(), magic) == 0;
}

// isspace() in the "C" locale, which OpenCV's signature checks run in.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

bool netpbm_signature(std::string_view bytes, char lowest, char highest) {
    return bytes.size() >= 3 && bytes[0] == 'P' && bytes[1] >= lowest && bytes[1] <= highest && is_space(bytes[2]);
}

}  // namespace

ImageFormat sniff_image_format(std::string_view bytes) {
    using namespace std::string_view_literals;
    // OpenCV 4.6's decoders in its registration order (loadsave.cpp); the first whose signature
    // matches decodes the bytes.
    if (starts_with(bytes, "BM")) return ImageFormat::bmp;
    if (starts_with(bytes, "#?RGBE") || starts_with(bytes, "#?RADIANCE")) return ImageFormat::radiance_hdr;
    if (starts_with(bytes, "\xFF\xD8\xFF")) return ImageFormat::jpeg;
    // OpenCV's WebP signature check is libwebp's own header parse of the first 32 bytes, which also
    // accepts a bare VP8/VP8L bitstream without its RIFF container.
    constexpr size_t kWebpSignatureBytes = 32;
    WebPBitstreamFeatures features;
    if (bytes.size() >= kWebpSignatureBytes &&
        WebPGetFeatures(reinterpret_cast<const uint8_t*>(bytes.data()), kWebpSignatureBytes, &features) == VP8_STATUS_OK)
        return ImageFormat::webp;
    if (starts_with(bytes, "\x59\xA6\x6A\x95")) return ImageFormat::sun_raster;
    if (netpbm_signature(bytes, '1', '6')) return ImageFormat::pnm;
    if (netpbm_signature(bytes, '7', '7')) return ImageFormat::pam;
    if (netpbm_signature(bytes, 'F', 'F') || netpbm_signature(bytes, 'f', 'f')) return ImageFormat::pfm;
    if (starts_with(bytes, "II\x2A\x00"sv) || starts_with(bytes, "MM\x00\x2A"sv) || starts_with(bytes, "II\x2B\x00"sv) ||
        starts_with(bytes, "MM\x00\x2B"sv))
        return ImageFormat::tiff;  // classic TIFF and BigTIFF
    if (starts_with(bytes, "\x89PNG\r\n\x1A\n")) return ImageFormat::png;
    // After PNG OpenCV tries JPEG 2000, OpenEXR, DICOM and GDAL formats; only the first two are named here.
    if (starts_with(bytes, "GIF87a") || starts_with(bytes, "GIF89a")) return ImageFormat::gif;
    if (starts_with(bytes, "\x00\x00\x00\x0CjP  \r\n\x87\n"sv) || starts_with(bytes, "\xFF\x4F\xFF\x51"))
        return ImageFormat::jpeg2000;
    if (starts_with(bytes, "\x76\x2F\x31\x01")) return ImageFormat::openexr;
    return ImageFormat::unknown;
}

const char* image_format_name(ImageFormat format) {
    switch (format) {
        case ImageFormat::jpeg: return "JPEG";
        case ImageFormat::png: return "PNG";
        case ImageFormat::tiff: return "TIFF";
        case ImageFormat::webp: return "WebP";
        case ImageFormat::bmp: return "BMP";
        case ImageFormat::pnm: return "PBM/PGM/PPM";
        case ImageFormat::gif: return "GIF";
        case ImageFormat::radiance_hdr: return "Radiance HDR";
        case ImageFormat::sun_raster: return "Sun raster";
        case ImageFormat::pam: return "PAM";
        case ImageFormat::pfm: return "PFM";
        case ImageFormat::jpeg2000: return "JPEG 2000";
        case ImageFormat::openexr: return "OpenEXR";
        case ImageFormat::unknown: break;
    }
    return "unknown";
}

std::string image_extension(std::string_view bytes) {
    switch (sniff_image_format(bytes)) {
        case ImageFormat::jpeg: return ".jpg";
        case ImageFormat::png: return ".png";
        case ImageFormat::tiff: return ".tif";
        case ImageFormat::webp: return ".webp";
        case ImageFormat::bmp: return ".bmp";
        case ImageFormat::pnm: return bytes[1] == '1' || bytes[1] == '4' ? ".pbm" : bytes[1] == '2' || bytes[1] == '5' ? ".pgm" : ".ppm";
        case ImageFormat::gif: return ".gif";
        default: return ".img";
    }
}

}  // namespace cbir
