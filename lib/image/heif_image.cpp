#include "image/heif_image.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include <libheif/heif.h>

#include "util/byte_text.h"

namespace cbir {
namespace {

struct ContextFree {
    void operator()(heif_context* context) const { heif_context_free(context); }
};
struct HandleRelease {
    void operator()(const heif_image_handle* handle) const { heif_image_handle_release(handle); }
};
struct ImageRelease {
    void operator()(const heif_image* image) const { heif_image_release(image); }
};
struct OptionsFree {
    void operator()(heif_decoding_options* options) const { heif_decoding_options_free(options); }
};

// libheif's messages may end in a newline.
std::string message_of(const heif_error& error) { return error.message ? one_line(error.message) : "unknown error"; }

struct Parsed {
    std::unique_ptr<heif_context, ContextFree> context;
    std::unique_ptr<heif_image_handle, HandleRelease> primary;
    std::string error;  // libheif's message when parsing failed
};

// libheif refuses any image (a grid's canvas, a tile) with a side at or above max_side.
Parsed parse(std::string_view bytes, int max_side) {
    Parsed out;
    out.context.reset(heif_context_alloc());
    if (!out.context) {
        out.error = "cannot allocate";
        return out;
    }
    if (max_side > 0) heif_context_set_maximum_image_size_limit(out.context.get(), max_side);
    heif_error error = heif_context_read_from_memory_without_copy(out.context.get(), bytes.data(), bytes.size(), nullptr);
    if (error.code == heif_error_Ok) {
        heif_image_handle* primary = nullptr;
        error = heif_context_get_primary_image_handle(out.context.get(), &primary);
        out.primary.reset(primary);
    }
    if (error.code != heif_error_Ok) out.error = message_of(error);
    return out;
}

}  // namespace

HeaderRead read_heif_header(std::string_view bytes, bool whole) {
    const ImageFormat format = sniff_image_format(bytes);
    const Parsed parsed = parse(bytes, 0);
    if (!parsed.primary) {
        // The boxes that describe the images may lie past the first bytes (after the media data).
        if (!whole) return header_ran_out(format, whole);
        return header_refused(format, std::string(kNoImageSize) + " (" + parsed.error + ")");
    }
    const int width = heif_image_handle_get_ispe_width(parsed.primary.get());
    const int height = heif_image_handle_get_ispe_height(parsed.primary.get());
    if (width <= 0 || height <= 0) return header_refused(format, std::string(kNoImageSize) + " (no ispe)");
    return header_complete(format, width, height);
}

DecodedImage decode_heif_in_this_process(const std::string& bytes, const ImageHeader& header) {
    DecodedImage out;
    const ImageFormat format = header.format;
    // A grid's canvas is sized from its grid box, which libheif's API does not show: no side of it
    // (or of a tile) may exceed the longer side of the primary image's ispe, which the pixel cap
    // checked.
    const long long longer = std::max(header.width, header.height);
    const Parsed parsed = parse(bytes, static_cast<int>(std::min<long long>(longer + 1, 1 << 30)));
    if (!parsed.primary) {
        out.error = std::string("corrupt ") + image_format_name(format) + " (" + parsed.error + ")";
        return out;
    }
    const std::unique_ptr<heif_decoding_options, OptionsFree> options(heif_decoding_options_alloc());
    options->convert_hdr_to_8bit = 1;  // 10-bit iPhone and AVIF images as 8-bit RGB
    heif_image* decoded = nullptr;
    const heif_error error = heif_decode_image(parsed.primary.get(), &decoded, heif_colorspace_RGB,
                                               heif_chroma_interleaved_RGB, options.get());
    const std::unique_ptr<heif_image, ImageRelease> image(decoded);
    if (error.code != heif_error_Ok || !image) {
        out.error = std::string("not a decodable image (") + image_format_name(format) + ": " + message_of(error) + ")";
        return out;
    }
    const int width = heif_image_get_width(image.get(), heif_channel_interleaved);
    const int height = heif_image_get_height(image.get(), heif_channel_interleaved);
    int stride = 0;
    const uint8_t* plane = heif_image_get_plane_readonly(image.get(), heif_channel_interleaved, &stride);
    if (!plane || width <= 0 || height <= 0 || stride < width * 3) {
        out.error = std::string("not a decodable image (") + image_format_name(format) + ": no RGB plane)";
        return out;
    }
    cv::Mat rgb(height, width, CV_8UC3);
    for (int y = 0; y < height; ++y) std::memcpy(rgb.ptr(y), plane + static_cast<size_t>(y) * stride, static_cast<size_t>(width) * 3);
    out.rgb = std::move(rgb);
    return out;
}

}  // namespace cbir
