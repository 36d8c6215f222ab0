#include "image/image_format.h"

#include <algorithm>
#include <cstdint>

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

// ISO base media file format (HEIF, AVIF): an 'ftyp' box first, whose major or compatible brands
// name a HEIF image brand. Returns heic, avif or unknown (an MP4 video has an ftyp box too).
ImageFormat heif_brand(std::string_view bytes) {
    if (bytes.size() < 16 || bytes.compare(4, 4, "ftyp") != 0) return ImageFormat::unknown;
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    const size_t box_size = (size_t(b[0]) << 24) | (size_t(b[1]) << 16) | (size_t(b[2]) << 8) | b[3];
    const size_t end = std::min(bytes.size(), box_size);
    bool heif = false;
    for (size_t at = 8; at + 4 <= end; at += at == 8 ? 8 : 4) {  // major brand, minor version, compatible brands
        const std::string_view brand = bytes.substr(at, 4);
        if (brand == "avif" || brand == "avis") return ImageFormat::avif;
        if (brand == "heic" || brand == "heix" || brand == "heim" || brand == "heis" || brand == "hevc" ||
            brand == "hevx" || brand == "mif1" || brand == "msf1")
            heif = true;
    }
    return heif ? ImageFormat::heic : ImageFormat::unknown;
}

// A camera's RAW file in a TIFF container: Canon's CR2 (its own magic after the header), a DNG (the
// DNGVersion tag in the first directory), or a first directory that is a reduced-resolution image
// with the full image in sub-directories (Nikon's NEF, Sony's ARW). The first directory of these is a
// thumbnail that OpenCV would decode as the photo.
enum class CameraRaw { none, cr2, dng, other };

CameraRaw camera_raw_tiff(std::string_view bytes) {
    if (bytes.size() < 16) return CameraRaw::none;
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    if (b[0] == 'I' && b[8] == 'C' && b[9] == 'R' && b[10] == 2) return CameraRaw::cr2;
    const bool little = b[0] == 'I';
    if (b[2] != (little ? 0x2A : 0x00)) return CameraRaw::none;  // BigTIFF is no camera's
    auto u16 = [&](size_t at) { return little ? uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 : uint32_t(b[at]) << 8 | b[at + 1]; };
    auto u32 = [&](size_t at) { return little ? u16(at) | u16(at + 2) << 16 : u16(at) << 16 | u16(at + 2); };
    const size_t ifd = u32(4);
    if (ifd < 8 || ifd + 2 > bytes.size()) return CameraRaw::none;
    const size_t entries = u16(ifd);
    bool reduced = false, sub_directories = false;
    for (size_t i = 0; i < entries && ifd + 2 + 12 * (i + 1) <= bytes.size(); ++i) {
        const size_t entry = ifd + 2 + 12 * i;
        const uint32_t tag = u16(entry), type = u16(entry + 2);
        if (tag == 50706) return CameraRaw::dng;  // DNGVersion
        if (tag == 254) reduced = ((type == 3 ? u16(entry + 8) : u32(entry + 8)) & 1) != 0;  // NewSubfileType
        if (tag == 330) sub_directories = true;                                              // SubIFDs
    }
    return reduced && sub_directories ? CameraRaw::other : CameraRaw::none;
}

}  // namespace

ImageFormat sniff_image_format(std::string_view bytes) {
    using namespace std::string_view_literals;
    // Formats OpenCV 4.6 does not decode, whose signatures none of its decoders accept.
    if (const ImageFormat heif = heif_brand(bytes); heif != ImageFormat::unknown) return heif;
    if (starts_with(bytes, "\xFF\x0A") || starts_with(bytes, "\x00\x00\x00\x0CJXL \r\n\x87\n"sv)) return ImageFormat::jpeg_xl;
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
        return camera_raw_tiff(bytes) != CameraRaw::none ? ImageFormat::camera_raw : ImageFormat::tiff;  // classic TIFF and BigTIFF
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
        case ImageFormat::heic: return "HEIC";
        case ImageFormat::avif: return "AVIF";
        case ImageFormat::jpeg_xl: return "JPEG XL";
        case ImageFormat::camera_raw: return "camera RAW";
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
        case ImageFormat::heic: return ".heic";
        case ImageFormat::avif: return ".avif";
        case ImageFormat::camera_raw: {
            const CameraRaw kind = camera_raw_tiff(bytes);
            return kind == CameraRaw::cr2 ? ".cr2" : kind == CameraRaw::dng ? ".dng" : ".tif";  // NEF or ARW: a TIFF
        }
        default: return ".img";
    }
}

}  // namespace cbir
