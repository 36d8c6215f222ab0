#pragma once
// Reads an image's pixel size from its header, before anything is decoded, with the parse of the
// decoder that will run: libjpeg's jpeg_read_header, libtiff's directory reader, libwebp's
// WebPGetFeatures, and OpenCV's own PNG (IHDR), BMP and PBM/PGM/PPM header rules. A decompression
// bomb (a small file that claims gigapixels) is refused instead of allocated, and an image whose size
// cannot be read this way is not decoded at all. (OpenCV has its own cap, OPENCV_IO_MAX_IMAGE_PIXELS,
// but 4.6 reads it in a static initialiser when the library loads, and its default, 2^30 pixels,
// lets a 3 GB buffer through.)
#include <limits>
#include <string>
#include <string_view>

#include "image/image_format.h"

namespace cbir {

struct ImageHeader {
    ImageFormat format = ImageFormat::unknown;
    long long width = 0;
    long long height = 0;
    // The largest working buffer the decoder sizes from other header fields, in pixels: OpenCV's
    // TIFF reader allocates one whole tile (or strip) as RGBA, however small the image (read from
    // the whole file only). Equal to width * height otherwise.
    long long buffer_pixels = 0;

    // width * height, or LLONG_MAX where that overflows (header fields are 32-bit).
    long long pixels() const { return saturating_product(width, height); }
    static long long saturating_product(long long a, long long b) {
        if (a <= 0 || b <= 0) return 0;
        return a > std::numeric_limits<long long>::max() / b ? std::numeric_limits<long long>::max() : a * b;
    }
};

struct HeaderRead {
    enum class Status {
        complete,         // header.width/height are what the decoder will allocate
        need_more_bytes,  // the header runs past the bytes given (only when they are not the whole file)
        refused,          // error says why; nothing may be decoded
    };
    Status status = Status::refused;
    ImageHeader header;  // format is set whenever it was recognised
    std::string error;
};

// `bytes` is the whole file when `whole` is true, else its first bytes: a header that runs past
// them then asks for more instead of being refused. GIF, HEIF/AVIF and camera RAW headers are read
// by their own libraries (gif_image.h, heif_image.h, raw_preview.h).
HeaderRead read_image_header(std::string_view bytes, bool whole = true);

// For the format readers: a header read whole, a refusal, and bytes that ran out first (refused
// when they are the whole file, else a request for more).
HeaderRead header_complete(ImageFormat format, long long width, long long height);
HeaderRead header_refused(ImageFormat format, std::string error);
HeaderRead header_ran_out(ImageFormat format, bool whole);
inline constexpr const char* kNoImageSize = "cannot read the image size from its header";

}  // namespace cbir
