#pragma once
// Which image format bytes are in, told as OpenCV's imdecode tells it: the same signature checks in
// the same order, so that the header cbir reads is the header of the decoder that will run. The
// formats OpenCV does not read (HEIF/AVIF, JPEG XL, camera RAW) are told apart first.
#include <string>
#include <string_view>

namespace cbir {

enum class ImageFormat {
    unknown,
    // Decoded: cbir reads their headers.
    jpeg,
    png,
    tiff,
    webp,
    bmp,
    pnm,  // PBM, PGM, PPM (P1-P6)
    // Decoded by cbir's own readers (OpenCV 4.6 reads none of them).
    gif,         // giflib: the first frame
    heic,        // libheif (HEVC); any HEIF that is not AVIF
    avif,        // libheif (AV1)
    camera_raw,  // TIFF-based RAW (CR2, NEF, ARW, DNG): libraw's largest embedded preview
    // Recognised and refused: OpenCV 4.6 decodes most of them, but cbir does not read their headers;
    // Debian's libjxl 0.7 prints pages of debug output on stderr for a damaged JPEG XL file.
    jpeg_xl,
    radiance_hdr,
    sun_raster,
    pam,
    pfm,
    jpeg2000,
    openexr,
};

ImageFormat sniff_image_format(std::string_view bytes);

// "JPEG", "PNG", "PBM/PGM/PPM", "JPEG 2000", …
const char* image_format_name(ImageFormat format);

// The usual file extension of the format the bytes are in (".jpg", ".png", ".tif", ".webp", ".bmp",
// ".pbm"/".pgm"/".ppm", ".gif", ".heic", ".avif", ".cr2"/".dng"/".tif" for a camera RAW), or ".img"
// for any other.
std::string image_extension(std::string_view bytes);

}  // namespace cbir
