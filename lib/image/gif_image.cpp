#include "image/gif_image.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include <gif_lib.h>

#include "image/limits.h"

namespace cbir {
namespace {

struct GifMemory {
    const std::string* bytes;
    size_t position;
};

int gif_read(GifFileType* gif, GifByteType* out, int count) {
    auto* memory = static_cast<GifMemory*>(gif->UserData);
    const size_t n = std::min(static_cast<size_t>(std::max(count, 0)), memory->bytes->size() - memory->position);
    std::memcpy(out, memory->bytes->data() + memory->position, n);
    memory->position += n;
    return static_cast<int>(n);
}

struct GifCloser {
    void operator()(GifFileType* gif) const {
        int error = 0;
        DGifCloseFile(gif, &error);
    }
};

std::string gif_error(const char* what, int code) {
    const char* text = GifErrorString(code);
    return std::string(what) + (text ? std::string(" (") + text + ")" : "");
}

}  // namespace

HeaderRead read_gif_header(std::string_view bytes, bool whole) {
    // "GIF89a", then the logical screen's width and height (16-bit little-endian).
    if (bytes.size() < 10) return header_ran_out(ImageFormat::gif, whole);
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    const long long width = b[6] | (b[7] << 8), height = b[8] | (b[9] << 8);
    if (width == 0 || height == 0) return header_refused(ImageFormat::gif, std::string(kNoImageSize) + " (a screen of 0 pixels)");
    return header_complete(ImageFormat::gif, width, height);
}

DecodedImage decode_gif(const std::string& bytes) {
    DecodedImage out;
    GifMemory memory{&bytes, 0};
    int code = 0;
    const std::unique_ptr<GifFileType, GifCloser> gif(DGifOpen(&memory, gif_read, &code));
    if (!gif) {
        out.error = gif_error("corrupt GIF", code);
        return out;
    }
    const int width = gif->SWidth, height = gif->SHeight;
    for (;;) {
        GifRecordType record;
        if (DGifGetRecordType(gif.get(), &record) == GIF_ERROR) {
            out.error = gif_error("truncated or corrupt GIF", gif->Error);
            return out;
        }
        if (record == TERMINATE_RECORD_TYPE) {
            out.error = "GIF without an image";
            return out;
        }
        if (record == EXTENSION_RECORD_TYPE) {  // comments, animation control: skipped
            int extension_code = 0;
            GifByteType* block = nullptr;
            int status = DGifGetExtension(gif.get(), &extension_code, &block);
            while (status != GIF_ERROR && block) status = DGifGetExtensionNext(gif.get(), &block);
            if (status == GIF_ERROR) {
                out.error = gif_error("truncated or corrupt GIF", gif->Error);
                return out;
            }
            continue;
        }
        if (record != IMAGE_DESC_RECORD_TYPE) continue;
        if (DGifGetImageDesc(gif.get()) == GIF_ERROR) {
            out.error = gif_error("truncated or corrupt GIF", gif->Error);
            return out;
        }
        const GifImageDesc& frame = gif->Image;
        // The frame's own size bounds the decoder's work, whatever the screen's.
        out.error = image_limit_error({ImageFormat::gif, frame.Width, frame.Height,
                                       ImageHeader::saturating_product(frame.Width, frame.Height)});
        if (!out.ok()) return out;
        if (frame.Width <= 0 || frame.Height <= 0) {
            out.error = "GIF frame of 0 pixels";
            return out;
        }
        const ColorMapObject* colours = frame.ColorMap ? frame.ColorMap : gif->SColorMap;
        if (!colours || colours->ColorCount <= 0) {
            out.error = "GIF without a colour table";
            return out;
        }
        // Outside the frame: the screen's background colour.
        cv::Vec3b background(0, 0, 0);
        if (gif->SColorMap && gif->SBackGroundColor < gif->SColorMap->ColorCount) {
            const GifColorType& c = gif->SColorMap->Colors[gif->SBackGroundColor];
            background = {c.Red, c.Green, c.Blue};
        }
        cv::Mat rgb(height, width, CV_8UC3, cv::Scalar(background[0], background[1], background[2]));
        std::vector<GifByteType> line(static_cast<size_t>(frame.Width));
        // Interlaced frames send every 8th row from 0, every 8th from 4, every 4th from 2, every 2nd from 1.
        const int starts[4] = {0, 4, 2, 1}, steps[4] = {8, 8, 4, 2};
        for (int pass = 0; pass < (frame.Interlace ? 4 : 1); ++pass) {
            const int first = frame.Interlace ? starts[pass] : 0, step = frame.Interlace ? steps[pass] : 1;
            for (int row = first; row < frame.Height; row += step) {
                if (DGifGetLine(gif.get(), line.data(), frame.Width) == GIF_ERROR) {
                    out.error = gif_error("truncated or corrupt GIF image data", gif->Error);
                    return out;
                }
                const long long y = static_cast<long long>(frame.Top) + row;
                if (y < 0 || y >= height) continue;
                auto* pixel = rgb.ptr<cv::Vec3b>(static_cast<int>(y));
                for (int x = 0; x < frame.Width; ++x) {
                    const long long screen_x = static_cast<long long>(frame.Left) + x;
                    if (screen_x < 0 || screen_x >= width) continue;
                    if (line[x] >= colours->ColorCount) continue;  // no such colour: left as the background
                    const GifColorType& c = colours->Colors[line[x]];
                    pixel[screen_x] = {c.Red, c.Green, c.Blue};
                }
            }
        }
        out.rgb = std::move(rgb);
        return out;
    }
}

}  // namespace cbir
