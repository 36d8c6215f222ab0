#include "image/jpeg_turbo.h"

#include <memory>

#include <turbojpeg.h>

#include "image/exif_orientation.h"

namespace cbir {
namespace {

// One decompressor per thread: creating one allocates libjpeg's state, and a handle is not shared.
tjhandle thread_decompressor() {
    struct Handle {
        tjhandle handle = tjInitDecompress();
        ~Handle() {
            if (handle) tjDestroy(handle);
        }
    };
    thread_local Handle decompressor;
    return decompressor.handle;
}

std::string decoder_error(tjhandle handle) { return std::string("decoder error: ") + tjGetErrorStr2(handle); }

}  // namespace

std::optional<DecodedImage> decode_jpeg_turbo(const std::string& bytes, int reduction) {
    DecodedImage out;
    tjhandle handle = thread_decompressor();
    if (!handle) {
        out.error = "cannot start the JPEG decoder";
        return out;
    }
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
    const auto size = static_cast<unsigned long>(bytes.size());
    int width = 0, height = 0, subsampling = 0, colorspace = 0;
    if (tjDecompressHeader3(handle, data, size, &width, &height, &subsampling, &colorspace) != 0 &&
        (tjGetErrorCode(handle) != TJERR_WARNING || width <= 0 || height <= 0)) {
        out.error = decoder_error(handle);
        return out;
    }
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) return std::nullopt;
    const tjscalingfactor scale{1, reduction >= 8 ? 8 : reduction >= 4 ? 4 : reduction >= 2 ? 2 : 1};
    const int out_width = TJSCALED(width, scale);
    const int out_height = TJSCALED(height, scale);
    cv::Mat rgb(out_height, out_width, CV_8UC3);
    // Warnings (extraneous bytes, a corrupt entropy segment libjpeg recovers from) are not failures:
    // OpenCV ignored them too, and real cameras write such files. TJFLAG_LIMITSCANS is a second fence
    // behind decode.cpp's own scan count.
    const int flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
    if (tjDecompress2(handle, data, size, rgb.ptr(), out_width, static_cast<int>(rgb.step[0]), out_height, TJPF_RGB,
                      flags) != 0 &&
        tjGetErrorCode(handle) != TJERR_WARNING) {
        out.error = decoder_error(handle);
        return out;
    }
    apply_exif_orientation(rgb, jpeg_exif_orientation(bytes));
    out.rgb = std::move(rgb);
    return out;
}

}  // namespace cbir
