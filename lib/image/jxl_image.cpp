#include "image/jxl_image.h"

#include <memory>

#include <jxl/decode.h>

namespace cbir {
namespace {

struct DecoderDestroy {
    void operator()(JxlDecoder* decoder) const { JxlDecoderDestroy(decoder); }
};
using Decoder = std::unique_ptr<JxlDecoder, DecoderDestroy>;

// The input is never closed: libjxl then reports bytes that end early as wanting more, where a
// closed input makes it print its own message on stderr.
Decoder decoder_for(std::string_view bytes, int events) {
    Decoder decoder(JxlDecoderCreate(nullptr));
    if (!decoder || JxlDecoderSubscribeEvents(decoder.get(), events) != JXL_DEC_SUCCESS ||
        JxlDecoderSetInput(decoder.get(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) != JXL_DEC_SUCCESS)
        return nullptr;
    return decoder;
}

}  // namespace

HeaderRead read_jxl_header(std::string_view bytes, bool whole) {
    const Decoder decoder = decoder_for(bytes, JXL_DEC_BASIC_INFO);
    if (!decoder) return header_refused(ImageFormat::jpeg_xl, kNoImageSize);
    switch (JxlDecoderProcessInput(decoder.get())) {
        case JXL_DEC_BASIC_INFO: {
            JxlBasicInfo info;
            if (JxlDecoderGetBasicInfo(decoder.get(), &info) != JXL_DEC_SUCCESS || info.xsize == 0 || info.ysize == 0) break;
            return header_complete(ImageFormat::jpeg_xl, info.xsize, info.ysize);
        }
        case JXL_DEC_NEED_MORE_INPUT: return header_ran_out(ImageFormat::jpeg_xl, whole);
        default: break;
    }
    return header_refused(ImageFormat::jpeg_xl, kNoImageSize);
}

DecodedImage decode_jxl(const std::string& bytes) {
    DecodedImage out;
    const Decoder decoder = decoder_for(bytes, JXL_DEC_FULL_IMAGE);
    if (!decoder) {
        out.error = "cannot start the JPEG XL decoder";
        return out;
    }
    const JxlPixelFormat format = {3, JXL_TYPE_UINT8, JXL_NATIVE_ENDIAN, 0};
    cv::Mat rgb;
    for (;;) {
        switch (JxlDecoderProcessInput(decoder.get())) {
            case JXL_DEC_NEED_IMAGE_OUT_BUFFER: {
                JxlBasicInfo info;
                size_t size = 0;
                if (JxlDecoderGetBasicInfo(decoder.get(), &info) != JXL_DEC_SUCCESS ||
                    JxlDecoderImageOutBufferSize(decoder.get(), &format, &size) != JXL_DEC_SUCCESS) {
                    out.error = "corrupt JPEG XL";
                    return out;
                }
                // The buffer is the oriented image: orientations 5-8 swap the sides.
                const bool turned = info.orientation >= JXL_ORIENT_TRANSPOSE;
                const int width = static_cast<int>(turned ? info.ysize : info.xsize);
                const int height = static_cast<int>(turned ? info.xsize : info.ysize);
                if (size != static_cast<size_t>(width) * height * 3) {
                    out.error = "corrupt JPEG XL (unexpected output size)";
                    return out;
                }
                rgb.create(height, width, CV_8UC3);
                if (JxlDecoderSetImageOutBuffer(decoder.get(), &format, rgb.data, size) != JXL_DEC_SUCCESS) {
                    out.error = "corrupt JPEG XL";
                    return out;
                }
                break;
            }
            case JXL_DEC_FULL_IMAGE:  // the first frame: an animation's others are not read
                out.rgb = std::move(rgb);
                return out;
            case JXL_DEC_NEED_MORE_INPUT: out.error = "truncated JPEG XL"; return out;
            case JXL_DEC_ERROR: out.error = "corrupt JPEG XL"; return out;
            default: out.error = "JPEG XL without an image"; return out;
        }
    }
}

}  // namespace cbir
