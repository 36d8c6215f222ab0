#pragma once
// Which image format bytes are in, told as OpenCV's imdecode tells it: the same signature checks in
// the same order, so that the header cbir reads is the header of the decoder that will run.
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
    // Recognised and refused: OpenCV 4.6 decodes most of them, but cbir does not read their headers.
    gif,
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
// ".pbm"/".pgm"/".ppm", ".gif"), or ".img" for any other.
std::string image_extension(std::string_view bytes);

}  // namespace cbir
